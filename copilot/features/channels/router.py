"""Chat channels: accept inbound messages once, acknowledge fast, answer later as a job.

    router = container.channels
    message = router.wecom().parse_callback(body, ...)   # the route verifies and parses
    router.accept(message)                               # one INSERT (unique channel+msg_id) and a job
    # … in the ``handle_messages`` job: router.handle(message) → identity → conversation → channel.send

What to answer is the conversation's decision; this module only routes: text → the conversation,
「确认 N」/card buttons → ``Decisions``, voice → ``VoiceMemos``.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Engine

from connectors.channels.base import Channel, ChannelError, InboundMessage, MediaTooLarge
from copilot.domain import ChatAnswer, User
from copilot.errors import AppError
from copilot.features.channels.decisions import BUTTON, COMMAND, Decisions
from copilot.features.channels.inbox import Inbox
from copilot.features.channels.render import (
    FAILED,
    MEDIA_TOO_LARGE,
    PLATFORM_NAMES,
    UNBOUND,
    UNSUPPORTED,
    VOICE_RECEIVED,
    format_answer,
    send,
    try_send,
)
from copilot.features.channels.voice import VoiceMemos
from copilot.infra.jobs.port import runs_remotely, submit_many

if TYPE_CHECKING:
    from connectors.channels.dingtalk import DingTalkChannel
    from connectors.channels.wecom import WeComChannel
    from connectors.crm.base import CRM
    from copilot.identity.users import UserDirectory
    from copilot.infra.jobs import JobQueue

logger = logging.getLogger(__name__)

# 「更正：今天拜访了华星…」: the rep's corrected transcript of their latest voice memo
CORRECTION = re.compile(r"^\s*更正\s*[：:]\s*(.+)$", re.S)
JOB_BATCH = 16  # messages per worker job when a burst is accepted at once (one Redis job costs ~0.3 ms)


class ConversationPort(Protocol):
    def reply(self, user: User, message: str, *, customer_id: str | None = None, channel_key: str | None = None,
              on_delta: Callable[[str], None] | None = None) -> ChatAnswer: ...  # fmt: skip


def channel_key(channel: str, sender_id: str, chat_id: str | None = None) -> str:
    """One conversation per chat and user on a platform (a group chat and a DM are two)."""
    return f"{channel}:{chat_id or 'dm'}:{sender_id}"


VoiceHook = Callable[[User, InboundMessage, bytes], None]


class ChannelRouter:
    def __init__(
        self,
        *,
        engine: Engine,
        users: UserDirectory,
        conversation: Callable[[], ConversationPort],
        jobs: JobQueue,
        channels: dict[str, Callable[[], Channel]],
        suggester: Callable[[], Any],
        memos: Callable[[], Any],
        crm: CRM,
    ) -> None:
        self._users = users
        self._conversation = conversation
        self.jobs = jobs
        self._factories = channels
        self._built: dict[str, Channel] = {}
        self._lock = threading.Lock()
        self.inbox = Inbox(engine)
        self.decisions = Decisions(engine, suggester)
        self.voice = VoiceMemos(memos=memos, crm=crm, users=users, jobs=lambda: self.jobs, channel=self.channel,
                                decisions=self.decisions)  # fmt: skip
        self.on_voice: VoiceHook = self.voice.take

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
                send(channel, to, text)
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
        acknowledged by group commit, see ``copilot.api.webhook_fast_path``)."""
        return self.inbox.accept_many(messages, self._queue)

    def _queue(self, fresh: list[InboundMessage]) -> None:
        # on a worker a burst runs as a few jobs, not hundreds; in-process, one job per message
        size = JOB_BATCH if runs_remotely(self.jobs) else 1
        submit_many(
            self.jobs, "handle_messages", [(fresh[i : i + size],) for i in range(0, len(fresh), size)]
        )

    def unanswered(self, messages: list[InboundMessage]) -> list[InboundMessage]:
        return self.inbox.unanswered(messages)

    # -- answer (runs as a job) ------------------------------------------------------------------------
    def handle_batch(self, messages: list[InboundMessage]) -> None:
        """The ``handle_messages`` job: in order; a retried job (the worker died midway) skips the
        messages already answered."""
        for message in self.unanswered(messages):
            self.handle(message)

    def _user(self, message: InboundMessage) -> User | None:
        if message.channel == "wecom":
            return self._users.by_channel_id(wecom_userid=message.sender_id)
        if message.channel == "dingtalk":
            return self._users.by_channel_id(dingtalk_userid=message.sender_id)
        return None

    def handle(self, message: InboundMessage) -> None:
        button = BUTTON.match(message.event_key or "") if message.kind == "event" else None
        if message.kind == "event" and (button is None or message.event != "template_card_event"):
            self.inbox.mark(message.channel, message.msg_id, "ignored")  # menu clicks, enter_agent …
            return
        channel = self.channel(message.channel)
        user = self._user(message)
        if user is None:
            logger.info("%s message %s from an unbound account", message.channel, message.msg_id)
            try_send(channel, message, UNBOUND.format(platform=PLATFORM_NAMES.get(message.channel, "")))
            self.inbox.mark(message.channel, message.msg_id, "unbound")
            return
        try:
            command = COMMAND.match(message.text) if message.kind == "text" else None
            if button is not None:
                self.decisions.decide(channel, message, user, button.group(1), button.group(2))
            elif command is not None:
                self.decisions.command(channel, message, user, command.group(1), int(command.group(2)))
            elif message.kind == "text" and CORRECTION.match(message.text):
                self.voice.correct(channel, message, user, CORRECTION.match(message.text).group(1))
            elif message.kind == "text":
                self._answer_text(channel, message, user)
            elif message.kind == "voice":
                self._take_voice(channel, message, user)
            else:
                send(channel, message, UNSUPPORTED)
        except Exception as exc:
            logger.error("%s message %s for user %s failed: %s", message.channel, message.msg_id, user.id,
                         type(exc).__name__, exc_info=not isinstance(exc, ChannelError))  # fmt: skip
            self.inbox.mark(message.channel, message.msg_id, "failed", user.id)
            try_send(channel, message, FAILED)
            return
        self.inbox.mark(message.channel, message.msg_id, "replied", user.id)

    def _answer_text(self, channel: Channel, message: InboundMessage, user: User) -> None:
        try:
            key = channel_key(message.channel, message.sender_id, message.conversation_id)
            answer = self._conversation().reply(user, message.text, channel_key=key)
        except AppError as error:  # e.g. an empty or too long message: tell the rep why
            send(channel, message, error.detail)
            return
        send(channel, message, format_answer(answer))
        if answer.suggestions:  # 「确认 N」 from this chat refers to these
            self.decisions.remember_shown(message, [s.id for s in answer.suggestions if s.id])
        logger.info("%s message %s answered for user %s (%d citations)", message.channel, message.msg_id,
                    user.id, len(answer.citations))  # fmt: skip

    def _take_voice(self, channel: Channel, message: InboundMessage, user: User) -> None:
        try:
            audio = channel.fetch_media(message)
        except MediaTooLarge:
            send(channel, message, MEDIA_TOO_LARGE)
            return
        send(channel, message, VOICE_RECEIVED)
        self.on_voice(user, message, audio)
