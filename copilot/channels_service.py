"""Chat channels glue: dedup inbound messages, acknowledge fast, answer later as a job.

    svc = channels_service(services)
    message = svc.wecom().parse_callback(body, ...)   # the route verifies and parses
    svc.accept(message)                               # one INSERT (unique channel+msg_id) and a job
    # … on a job thread: svc.handle(message) → identity → conversation → channel.send

Platforms retry a callback they think was lost (WeCom three times after 5 s), so a message id is
accepted once: the row in ``channel_messages`` is the atomic dedup, and it records only ids and
statuses, never content. What to answer is the conversation's decision; this module only routes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from connectors.channels.base import Channel, ChannelError, InboundMessage, MediaTooLarge, OutboundReply
from connectors.channels.crypto import CryptoError, MessageCrypto
from copilot.domain import ChatAnswer, User
from copilot.errors import AppError
from copilot.jobs import JobQueue, runs_remotely, submit_many
from copilot.storage import tables as t
from copilot.users import UserDirectory

if TYPE_CHECKING:
    from connectors.channels.dingtalk import DingTalkChannel
    from connectors.channels.wecom import WeComChannel
    from copilot.services import Services

logger = logging.getLogger(__name__)

MAX_MSG_ID = t.MAX_MSG_ID

channel_messages = t.channel_messages

PLATFORM_NAMES = {"wecom": "企业微信", "dingtalk": "钉钉"}
UNBOUND = "您好！您的{platform}账号还没有绑定销售副驾用户，请联系管理员为您绑定账号后再使用。"
VOICE_RECEIVED = "已收到语音，正在转写…"
UNSUPPORTED = "暂不支持这种类型的消息，请发送文字或语音。"
MEDIA_TOO_LARGE = "语音文件过大，无法处理，请发送较短的语音。"
FAILED = "抱歉，处理您的消息时出错了，请稍后再试。"
MEMO_FAILED = "语音纪要处理失败：{message}"
ASK_CUSTOMER = "未能从录音中识别出您负责的客户，纪要（{memo_id}）已保存但未关联客户。请问这是哪位客户的拜访？"
NO_SUGGESTIONS = "暂无新的跟进建议。"
NO_SUCH_SUGGESTION = "没有找到第 {n} 条建议，请按最近一次发给您的建议编号回复。"
APPLIED = "已采纳：{title}，已写入 CRM。"
ALREADY_APPLIED = "该建议已采纳，无需重复操作：{title}"
DISMISSED = "已忽略：{title}"
MAX_CARD_SUGGESTIONS = 5
JOB_BATCH = 16  # messages per worker job when a burst is accepted at once (one Redis job costs ~0.3 ms)
COMMAND = re.compile(r"^\s*(确认|采纳|忽略)\s*(\d{1,2})\s*$")
BUTTON = re.compile(r"^(apply|dismiss):(sg_[0-9a-f]{1,64})$")


class ConversationPort(Protocol):
    def reply(self, user: User, message: str, *, customer_id: str | None = None) -> ChatAnswer: ...


VoiceHook = Callable[[User, InboundMessage, bytes], None]


def _ignore_voice(user: User, message: InboundMessage, audio: bytes) -> None:
    logger.info(
        "voice message %s from user %s: %d bytes, no memo pipeline wired", message.msg_id, user.id, len(audio)
    )


def format_answer(answer: ChatAnswer) -> str:
    """The chat answer as channel text; citation labels the text does not show yet are listed under 依据."""
    text = answer.answer.strip()
    if answer.note:
        text = f"（{answer.note}）\n{text}"
    missing = [c.label for c in answer.citations if c.label and c.label not in text]
    if missing:
        text += "\n\n依据：\n" + "\n".join(f"[{i}] {label}" for i, label in enumerate(missing, start=1))
    return text


def _insert_new(engine: Engine) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` into channel_messages: known ids are skipped, not errors."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(channel_messages).on_conflict_do_nothing(
        index_elements=[channel_messages.c.channel, channel_messages.c.msg_id]
    )


def _dedup_key(msg_id: str) -> str:
    if len(msg_id) <= MAX_MSG_ID:
        return msg_id
    return "sha1:" + hashlib.sha1(msg_id.encode()).hexdigest()  # noqa: S324 -- a key, not a secret


class ChannelsService:
    def __init__(
        self,
        *,
        engine: Engine,
        users: UserDirectory,
        conversation: ConversationPort | Callable[[], ConversationPort],
        jobs: JobQueue,
        channels: dict[str, Callable[[], Channel]],
        on_voice: VoiceHook | None = None,
        suggester: Callable[[], Any] | None = None,
    ) -> None:
        self._engine = engine
        self._users = users
        self._conversation = conversation
        self.jobs = jobs
        self._factories = channels
        self._built: dict[str, Channel] = {}
        self._lock = threading.Lock()
        self.on_voice: VoiceHook = on_voice or _ignore_voice
        self._suggester = suggester

    # -- channels -----------------------------------------------------------------------------------
    def channel(self, name: str) -> Channel:
        """The configured adapter; ``AppError`` 503 naming the missing variables otherwise."""
        if name in self._built:
            return self._built[name]
        with self._lock:
            if name not in self._built:
                if name not in self._factories:
                    raise AppError("not_found", f"未知渠道 {name}")
                self._built[name] = self._factories[name]()
        return self._built[name]

    def wecom(self) -> WeComChannel:
        return self.channel("wecom")  # type: ignore[return-value]

    def dingtalk(self) -> DingTalkChannel:
        return self.channel("dingtalk")  # type: ignore[return-value]

    # -- push (no inbound message to answer: e.g. a CRM write that failed for good) ----------------------
    def push(self, user_id: str, text: str) -> list[str]:
        """Send ``text`` to every chat account bound to ``user_id`` on a configured channel; returns the
        channels reached. Unconfigured channels are skipped quietly; send failures are logged."""
        reached = []
        for name, platform_id in self._users.channel_ids(user_id).items():
            try:
                channel = self.channel(name)
            except AppError:  # this channel is not configured here
                continue
            to = InboundMessage(name, f"push:{secrets.token_hex(8)}", platform_id, "text")
            try:
                self._send(channel, to, text)
            except ChannelError as exc:
                logger.warning("push to user %s on %s failed: %s", user_id, name, exc.code)
                continue
            reached.append(name)
        return reached

    # -- receive ---------------------------------------------------------------------------------------
    def accept(self, message: InboundMessage) -> bool:
        """Record the message id; queue the answer. False (and nothing queued) for a repeat delivery."""
        return self.accept_many([message])[0]

    def accept_many(self, messages: list[InboundMessage]) -> list[bool]:
        """``accept`` for a batch, in one transaction and one job-queue round trip (a webhook burst is
        acknowledged by group commit, see ``copilot.api.webhook_fast_path``). For each message: True if
        it is new (its answer is queued), False for a repeat delivery — of an earlier message or of one
        earlier in this batch.

        If the jobs cannot be queued (Redis down) the ids are forgotten again and the error raised, so
        the platform's retry of these deliveries is not mistaken for a repeat."""
        if not messages:
            return []
        now = datetime.now(UTC)
        keys = [(m.channel, _dedup_key(m.msg_id)) for m in messages]
        rows = {key: m for key, m in zip(keys, messages, strict=True)}  # one row per key: batch repeats
        rows = [{"channel": c, "msg_id": k, "kind": m.kind, "status": "received", "received_at": now}
                for (c, k), m in dict(zip(keys, messages, strict=True)).items()]  # fmt: skip
        returning = _insert_new(self._engine).returning(channel_messages.c.channel, channel_messages.c.msg_id)
        with self._engine.begin() as conn:  # executemany: one cached statement for any batch size
            new = {tuple(row) for row in conn.execute(returning, rows)}
        accepted, seen = [], set()
        for key, message in zip(keys, messages, strict=True):
            first = key in new and key not in seen
            seen.add(key)
            accepted.append(first)
            if not first:
                logger.info("%s message %s is a repeat delivery; ignored", message.channel, message.msg_id)
        fresh = [m for m, ok in zip(messages, accepted, strict=True) if ok]
        if not fresh:
            return accepted
        try:
            if runs_remotely(self.jobs):  # a worker runs it by name; a burst as a few jobs, not hundreds
                chunks = [fresh[i : i + JOB_BATCH] for i in range(0, len(fresh), JOB_BATCH)]
                submit_many(self.jobs, handle_messages_job, [(chunk,) for chunk in chunks])
            else:
                submit_many(self.jobs, self.handle, [(m,) for m in fresh])
        except Exception:
            with self._engine.begin() as conn:
                for channel, key in new:
                    conn.execute(
                        delete(channel_messages).where(
                            channel_messages.c.channel == channel, channel_messages.c.msg_id == key
                        )
                    )
            raise
        return accepted

    def unanswered(self, messages: list[InboundMessage]) -> list[InboundMessage]:
        """Those of ``messages`` still waiting for their answer (status ``received``)."""
        if not messages:
            return []
        keys = {(m.channel, _dedup_key(m.msg_id)) for m in messages}
        with self._engine.connect() as conn:
            waiting = {
                (row.channel, row.msg_id)
                for row in conn.execute(
                    select(channel_messages.c.channel, channel_messages.c.msg_id).where(
                        channel_messages.c.msg_id.in_([k for _, k in keys]),
                        channel_messages.c.status == "received",
                    )
                )
            }
        return [m for m in messages if (m.channel, _dedup_key(m.msg_id)) in waiting]

    def _mark(self, message: InboundMessage, status: str, user_id: str | None = None) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                update(channel_messages)
                .where(
                    channel_messages.c.channel == message.channel,
                    channel_messages.c.msg_id == _dedup_key(message.msg_id),
                )
                .values(status=status, user_id=user_id, done_at=datetime.now(UTC))
            )

    # -- answer (runs as a job) ------------------------------------------------------------------------
    def _user(self, message: InboundMessage) -> User | None:
        if message.channel == "wecom":
            return self._users.by_channel_id(wecom_userid=message.sender_id)
        if message.channel == "dingtalk":
            return self._users.by_channel_id(dingtalk_userid=message.sender_id)
        return None

    def _conversation_port(self) -> ConversationPort:
        conv = self._conversation
        return conv if hasattr(conv, "reply") else conv()  # type: ignore[operator,return-value]

    def handle(self, message: InboundMessage) -> None:
        button = BUTTON.match(message.event_key or "") if message.kind == "event" else None
        if message.kind == "event" and (button is None or message.event != "template_card_event"):
            self._mark(message, "ignored")  # menu clicks, enter_agent …: acknowledged, nothing to answer
            return
        channel = self.channel(message.channel)
        user = self._user(message)
        if user is None:
            logger.info("%s message %s from an unbound account", message.channel, message.msg_id)
            self._try_send(channel, message, UNBOUND.format(platform=PLATFORM_NAMES.get(message.channel, "")))
            self._mark(message, "unbound")
            return
        try:
            command = COMMAND.match(message.text) if message.kind == "text" else None
            if button is not None:
                self._decide(channel, message, user, button.group(1), button.group(2))
            elif command is not None:
                self._command(channel, message, user, command.group(1), int(command.group(2)))
            elif message.kind == "text":
                self._answer_text(channel, message, user)
            elif message.kind == "voice":
                self._take_voice(channel, message, user)
            else:
                self._send(channel, message, UNSUPPORTED)
        except Exception as exc:
            logger.error(
                "%s message %s for user %s failed: %s",
                message.channel,
                message.msg_id,
                user.id,
                type(exc).__name__,
                exc_info=not isinstance(exc, ChannelError),
            )
            self._mark(message, "failed", user.id)
            self._try_send(channel, message, FAILED)
            return
        self._mark(message, "replied", user.id)

    def _answer_text(self, channel: Channel, message: InboundMessage, user: User) -> None:
        try:
            answer = self._conversation_port().reply(user, message.text)
        except AppError as error:  # e.g. an empty or too long message: tell the rep why
            self._send(channel, message, error.detail)
            return
        self._send(channel, message, format_answer(answer))
        logger.info(
            "%s message %s answered for user %s (%d citations)",
            message.channel,
            message.msg_id,
            user.id,
            len(answer.citations),
        )

    def _take_voice(self, channel: Channel, message: InboundMessage, user: User) -> None:
        try:
            audio = channel.fetch_media(message)
        except MediaTooLarge:
            self._send(channel, message, MEDIA_TOO_LARGE)
            return
        self._send(channel, message, VOICE_RECEIVED)
        self.on_voice(user, message, audio)

    # -- suggestions: show with buttons / numbers, apply or dismiss exactly once --------------------------
    def show_suggestions(
        self, channel: Channel, message: InboundMessage, user: User, suggestions: list[dict]
    ) -> None:
        """WeCom: one template card per suggestion (采纳/忽略 buttons); else numbered text (确认 N)."""
        shown = [s for s in suggestions if s.get("id")][:MAX_CARD_SUGGESTIONS]
        self._remember_shown(message, [s["id"] for s in shown])
        if not shown:
            self._send(channel, message, NO_SUGGESTIONS)
            return
        send_card = getattr(channel, "send_card", None)
        send_action_card = getattr(channel, "send_action_card", None)
        if send_card is not None:
            for s in shown:
                send_card(message, suggestion_card(s))
        elif send_action_card is not None:  # DingTalk: a tap sends 「确认 N」/「忽略 N」 as the rep
            for i, s in enumerate(shown, start=1):
                title = f"{i}. {_clip(s.get('title') or '跟进建议', 40)}"
                text = f"**{title}**\n\n{_clip(s.get('rationale') or '', 300)}"
                send_action_card(message, title, text, [("采纳", tap_to_send(f"确认 {i}")),
                                                        ("忽略", tap_to_send(f"忽略 {i}"))])  # fmt: skip
        else:
            lines = ["跟进建议："]
            for i, s in enumerate(shown, start=1):
                lines.append(f"{i}. {s.get('title', '')}")
                if s.get("rationale"):
                    lines.append(f"   {_clip(s['rationale'], 120)}")
            lines.append("回复“确认 N”采纳，回复“忽略 N”忽略。")
            self._send(channel, message, "\n".join(lines))
        if self._suggester is not None:
            try:
                self._suggester().store.mark_shown(user.id, [s["id"] for s in shown], channel=message.channel)
            except Exception as exc:  # logging for adoption is extra; the rep already has the cards
                logger.warning("suggestions shown on %s not logged: %s", message.channel, type(exc).__name__)

    def _remember_shown(self, message: InboundMessage, ids: list[str]) -> None:
        """The numbering 「确认 N」 refers to, in the database: the reply may come on another process."""
        key = {"channel": message.channel, "sender_id": message.sender_id[:128]}
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            done = conn.execute(
                update(t.channel_shown)
                .where(
                    t.channel_shown.c.channel == key["channel"],
                    t.channel_shown.c.sender_id == key["sender_id"],
                )
                .values(suggestion_ids=ids, updated_at=now)
            ).rowcount
            if not done:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            insert(t.channel_shown).values(**key, suggestion_ids=ids, updated_at=now)
                        )
                except IntegrityError:  # shown concurrently on another process: the later list wins
                    conn.execute(
                        update(t.channel_shown)
                        .where(t.channel_shown.c.channel == key["channel"],
                               t.channel_shown.c.sender_id == key["sender_id"])
                        .values(suggestion_ids=ids, updated_at=now)
                    )  # fmt: skip

    def last_shown(self, channel: str, sender_id: str) -> list[str]:
        with self._engine.connect() as conn:
            ids = conn.execute(
                select(t.channel_shown.c.suggestion_ids).where(
                    t.channel_shown.c.channel == channel, t.channel_shown.c.sender_id == sender_id[:128]
                )
            ).scalar_one_or_none()
        return list(ids or [])

    def _command(self, channel: Channel, message: InboundMessage, user: User, verb: str, n: int) -> None:
        ids = self.last_shown(message.channel, message.sender_id)
        if not 1 <= n <= len(ids):
            self._send(channel, message, NO_SUCH_SUGGESTION.format(n=n))
            return
        self._decide(channel, message, user, "dismiss" if verb == "忽略" else "apply", ids[n - 1])

    def _decide(self, channel: Channel, message: InboundMessage, user: User, action: str, sid: str) -> None:
        if self._suggester is None:
            self._send(channel, message, UNSUPPORTED)
            return
        suggester = self._suggester()
        row = suggester.store.get(sid)
        if row is None or row.user_id != user.id:
            self._send(channel, message, "建议不存在。")
            return
        try:
            if action == "apply":
                if row.status == "applied":  # a second press: the CRM change was made once already
                    self._update_card(channel, message, "已采纳")
                    self._send(channel, message, ALREADY_APPLIED.format(title=row.title))
                    return
                outcome = suggester.apply(user, sid, channel=message.channel)
                self._update_card(channel, message, "已采纳")
                # two presses at once: the idempotency key lets one write through, the other is told so
                duplicate = (outcome.get("result") or {}).get("duplicate")
                self._send(
                    channel, message, (ALREADY_APPLIED if duplicate else APPLIED).format(title=row.title)
                )
            else:
                if row.status != "dismissed":
                    suggester.store.feedback(user.id, sid, "dismiss", comment=None, edited=None,
                                             channel=message.channel)  # fmt: skip
                self._update_card(channel, message, "已忽略")
                self._send(channel, message, DISMISSED.format(title=row.title))
        except AppError as error:
            self._send(channel, message, error.detail)
        logger.info("%s suggestion %s %s by user %s", message.channel, sid, action, user.id)

    # -- voice → memo (the default on_voice) ----------------------------------------------------------
    def voice_to_memo(self, pipeline: Any, crm: Any) -> VoiceHook:
        """The on_voice hook: store the audio as a memo of the rep and process it as a job."""

        def hook(user: User, message: InboundMessage, audio: bytes) -> None:
            memo_id = _store_memo(pipeline, user, audio, message)
            if runs_remotely(self.jobs):
                self.jobs.submit(channel_memo_job, message, user.id, memo_id)
            else:
                self.jobs.submit(self._process_memo, pipeline, crm, user, message, memo_id)

        return hook

    def _process_memo(
        self, pipeline: Any, crm: Any, user: User, message: InboundMessage, memo_id: str
    ) -> None:
        channel = self.channel(message.channel)
        try:
            pipeline.process(memo_id)
            row = pipeline._row(memo_id)
            if row.status != "done":
                self._send(channel, message, MEMO_FAILED.format(message=(row.error or {}).get("message", "")))
                return
            visit = dict(row.visit_record or {})
            visit.pop("suggestions", None)
            customer = _matched_customer(visit, user, crm, self._users)
            if customer is None:
                self._send(
                    channel,
                    message,
                    summarize(visit, row.transcript) + "\n\n" + ASK_CUSTOMER.format(memo_id=memo_id),
                )
                return
            with self._engine.begin() as conn:
                conn.execute(update(t.memos).where(t.memos.c.id == memo_id).values(customer_id=customer[0]))
            pipeline._suggest(memo_id, visit)  # suggestions now that the memo has its customer
            view = pipeline.to_json(pipeline._row(memo_id))
            self._send(
                channel,
                message,
                summarize(visit, row.transcript, customer_name=customer[1], draft=view["draft"]),
            )
            self.show_suggestions(channel, message, user, list(view["suggestions"] or []))
        except Exception as exc:
            logger.error("memo %s from %s message %s failed: %s", memo_id, message.channel, message.msg_id,
                         type(exc).__name__, exc_info=not isinstance(exc, ChannelError))  # fmt: skip
            self._try_send(channel, message, FAILED)

    @staticmethod
    def _update_card(channel: Channel, message: InboundMessage, label: str) -> None:
        """Mark the pressed card as done; the text reply follows anyway, so a failure is only logged."""
        update = getattr(channel, "update_card", None)
        if update is None or not message.response_code:
            return
        try:
            update(message, label)
        except ChannelError as exc:
            logger.warning("%s card of message %s not updated: %s", message.channel, message.msg_id, exc.code)

    @staticmethod
    def _send(channel: Channel, message: InboundMessage, text: str) -> None:
        channel.send(message, OutboundReply(text))

    def _try_send(self, channel: Channel, message: InboundMessage, text: str) -> None:
        try:
            self._send(channel, message, text)
        except ChannelError as exc:
            logger.warning(
                "%s reply to message %s not delivered: %s", message.channel, message.msg_id, exc.code
            )


def _clip(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def tap_to_send(text: str) -> str:
    """A DingTalk card button link that, tapped, sends ``text`` into the chat as the user."""
    return "dtmd://dingtalkclient/sendMessage?content=" + quote(text)


def suggestion_card(s: dict[str, Any]) -> dict[str, Any]:
    """A WeCom button_interaction template card for one suggestion; button keys carry its id."""
    sid = s["id"]
    return {
        "card_type": "button_interaction",
        "source": {"desc": "销售副驾"},
        "main_title": {"title": _clip(s.get("title") or "跟进建议", 26), "desc": "跟进建议"},
        "sub_title_text": _clip(s.get("rationale") or "", 110),
        "task_id": f"{sid}-{secrets.token_hex(4)}",
        "button_list": [
            {"text": "采纳", "style": 1, "key": f"apply:{sid}"},
            {"text": "忽略", "style": 2, "key": f"dismiss:{sid}"},
        ],
    }


def summarize(visit: dict[str, Any], transcript: str | None, *, customer_name: str | None = None,
              draft: dict[str, Any] | None = None) -> str:  # fmt: skip
    """The visit record as a short Chinese text for the rep."""
    lines = ["拜访纪要" + (f"（{customer_name}）" if customer_name else "") + "："]
    if transcript:
        lines.append(f"转写：{_clip(transcript, 300)}")
    contacts = [c.get("name") or c.get("mentioned_as") for c in visit.get("contacts") or []]
    if contacts := [c for c in contacts if c]:
        lines.append("联系人：" + "、".join(contacts))
    for key, label in (("needs", "需求"), ("objections", "异议")):
        items = [i.get("text") for i in visit.get(key) or [] if i.get("text")]
        if items:
            lines.append(f"{label}：" + "；".join(items))
    if comps := [c.get("name") for c in visit.get("competitors") or [] if c.get("name")]:
        lines.append("竞品：" + "、".join(comps))
    steps = [
        s.get("action", "") + (f"（{s['due']}前）" if s.get("due") else "")
        for s in visit.get("next_steps") or []
    ]
    if steps := [s for s in steps if s]:
        lines.append("下一步：" + "；".join(steps))
    if (visit.get("sentiment") or {}).get("value"):
        lines.append(f"客户态度：{visit['sentiment']['value']}")
    if draft:
        lines.append("已生成拜访记录草稿，可在销售副驾中确认写入 CRM。")
    return "\n".join(lines)


def _store_memo(pipeline: Any, user: User, audio: bytes, message: InboundMessage) -> str:
    """The memo row without a customer yet (found in the transcript later); the audio kept on disk."""
    if len(audio) > pipeline.max_bytes:
        raise MediaTooLarge("语音文件过大", channel=message.channel)
    memo_id = f"memo_{secrets.token_hex(8)}"
    path = pipeline._store(memo_id, audio)
    when = datetime.fromtimestamp(message.created_at, UTC) if message.created_at else datetime.now(UTC)
    with pipeline.engine.begin() as conn:
        conn.execute(
            insert(t.memos).values(
                id=memo_id, customer_id=None, user_id=user.id, recorded_at=when.astimezone().isoformat(),
                status="queued", transcript="", segments=[], audio_path=os.fspath(path), created_at=datetime.now(UTC),
            )
        )  # fmt: skip
    logger.info("memo %s from %s message %s (%d bytes)", memo_id, message.channel, message.msg_id, len(audio))
    return memo_id


def _matched_customer(
    visit: dict[str, Any], user: User, crm: Any, users: UserDirectory
) -> tuple[str, str] | None:
    """The customer the extractor matched, if the rep may see it."""
    from copilot.access import customer_for

    found = visit.get("customer") or {}
    cid = found.get("id") if isinstance(found, dict) else None
    if not cid:
        return None
    try:
        snapshot = customer_for(user, cid, crm=crm, users=users)
    except AppError:
        return None
    return cid, getattr(snapshot, "name", None) or found.get("name") or cid


# -- wiring (from settings; called by the composition root / routes) ---------------------------------------

WECOM_VARS = (
    ("corp_id", "COPILOT_WECOM_CORP_ID", "企业 ID"),
    ("agent_id", "COPILOT_WECOM_AGENT_ID", "应用 AgentId"),
    ("secret", "COPILOT_WECOM_SECRET", "应用 Secret"),
    ("token", "COPILOT_WECOM_TOKEN", "企业微信回调 Token"),
    ("aes_key", "COPILOT_WECOM_AES_KEY", "企业微信回调 EncodingAESKey"),
)
DINGTALK_VARS = (
    ("app_key", "COPILOT_DINGTALK_APP_KEY", "钉钉应用 AppKey"),
    ("app_secret", "COPILOT_DINGTALK_APP_SECRET", "钉钉应用 AppSecret"),
)


def _require(section: Any, variables: tuple[tuple[str, str, str], ...], platform: str) -> None:
    missing = [f"{env}（{meaning}）" for attr, env, meaning in variables if not getattr(section, attr)]
    if missing:
        raise AppError(
            "channel_not_configured", f"{platform}渠道未配置：请设置 {'、'.join(missing)}", status=503
        )


def build_wecom(services: Services) -> WeComChannel:
    from connectors.channels.wecom import WeComChannel, WeComClient

    cfg = services.settings.wecom
    _require(cfg, WECOM_VARS, "企业微信")
    try:
        crypto = MessageCrypto(cfg.token or "", cfg.aes_key or "", cfg.corp_id or "")
    except CryptoError as error:
        raise AppError(
            "channel_not_configured", f"COPILOT_WECOM_AES_KEY 无效：{error.message}", status=503
        ) from None
    if not str(cfg.agent_id).isdigit():
        raise AppError(
            "channel_not_configured", "COPILOT_WECOM_AGENT_ID 应为数字（应用 AgentId）", status=503
        )
    client = WeComClient(
        base_url=cfg.api_base,
        corp_id=cfg.corp_id or "",
        secret=cfg.secret or "",
        agent_id=cfg.agent_id or "0",
    )
    return WeComChannel(crypto, client)


def build_dingtalk(services: Services) -> DingTalkChannel:
    from connectors.channels.dingtalk import DingTalkChannel, DingTalkClient

    cfg = services.settings.dingtalk
    _require(cfg, DINGTALK_VARS, "钉钉")
    client = DingTalkClient(
        api_base=cfg.api_base,
        oapi_base=cfg.oapi_base,
        app_key=cfg.app_key or "",
        app_secret=cfg.app_secret or "",
        robot_code=cfg.robot_code,
    )
    return DingTalkChannel(client, app_secret=cfg.app_secret or "")


def _lazy_voice(svc: ChannelsService, services: Services, memo_pipeline: Callable[[Any], Any]) -> VoiceHook:
    def hook(user: User, message: InboundMessage, audio: bytes) -> None:
        svc.voice_to_memo(memo_pipeline(services), services.crm)(user, message, audio)

    return hook


def handle_message_job(message: InboundMessage) -> None:
    """``ChannelsService.handle`` by name: jobs queued before ``handle_messages_job`` still run."""
    from copilot.jobs.redis_queue import worker_services

    channels_service(worker_services()).handle(message)


def handle_messages_job(messages: list[InboundMessage]) -> None:
    """Several messages of one burst, in order, on a worker. A retried job (the worker died midway)
    skips the messages already answered."""
    from copilot.jobs.redis_queue import worker_services

    svc = channels_service(worker_services())
    for message in svc.unanswered(messages):
        svc.handle(message)


def channel_memo_job(message: InboundMessage, user_id: str, memo_id: str) -> None:
    """A voice message's memo (transcribe, extract, suggest, reply), run by name on a worker."""
    from copilot.jobs.redis_queue import worker_services
    from copilot.memos import memo_pipeline

    services = worker_services()
    user = services.users.get(user_id)
    if user is None:  # the account was removed meanwhile: nothing to answer
        logger.warning("memo %s: user %s no longer exists", memo_id, user_id)
        return
    svc = channels_service(services)
    svc._process_memo(memo_pipeline(services), services.crm, user, message, memo_id)


def jobs_for(services: Services) -> JobQueue:
    return services.jobs


def channels_service(services: Services) -> ChannelsService:
    """The one ChannelsService of these services (built on first use)."""

    def build() -> ChannelsService:
        from copilot.memos import memo_pipeline
        from copilot.suggestions import suggester_for

        svc = ChannelsService(
            engine=services.engine,
            users=services.users,
            conversation=lambda: services.conversation,
            jobs=jobs_for(services),
            channels={"wecom": lambda: build_wecom(services), "dingtalk": lambda: build_dingtalk(services)},
            suggester=lambda: suggester_for(services),
        )
        svc.on_voice = _lazy_voice(svc, services, memo_pipeline)
        return svc

    return services._once("_channels", build)
