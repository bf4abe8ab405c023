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
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Engine, insert, update
from sqlalchemy.exc import IntegrityError

from connectors.channels.base import Channel, ChannelError, InboundMessage, MediaTooLarge, OutboundReply
from connectors.channels.crypto import CryptoError, MessageCrypto
from copilot.domain import ChatAnswer, User
from copilot.errors import AppError
from copilot.jobs import JobQueue
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
    ) -> None:
        self._engine = engine
        self._users = users
        self._conversation = conversation
        self.jobs = jobs
        self._factories = channels
        self._built: dict[str, Channel] = {}
        self._lock = threading.Lock()
        self.on_voice: VoiceHook = on_voice or _ignore_voice

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

    # -- receive ---------------------------------------------------------------------------------------
    def accept(self, message: InboundMessage) -> bool:
        """Record the message id; queue the answer. False (and nothing queued) for a repeat delivery."""
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    insert(channel_messages).values(
                        channel=message.channel,
                        msg_id=_dedup_key(message.msg_id),
                        kind=message.kind,
                        status="received",
                        received_at=datetime.now(UTC),
                    )
                )
        except IntegrityError:
            logger.info("%s message %s is a repeat delivery; ignored", message.channel, message.msg_id)
            return False
        self.jobs.submit(self.handle, message)
        return True

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
        if message.kind == "event":  # menu clicks, enter_agent …: acknowledged, nothing to answer yet
            self._mark(message, "ignored")
            return
        channel = self.channel(message.channel)
        user = self._user(message)
        if user is None:
            logger.info("%s message %s from an unbound account", message.channel, message.msg_id)
            self._try_send(channel, message, UNBOUND.format(platform=PLATFORM_NAMES.get(message.channel, "")))
            self._mark(message, "unbound")
            return
        try:
            if message.kind == "text":
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


def jobs_for(services: Services) -> JobQueue:
    return services.jobs


def channels_service(services: Services) -> ChannelsService:
    """The one ChannelsService of these services (built on first use)."""

    def build() -> ChannelsService:
        return ChannelsService(
            engine=services.engine,
            users=services.users,
            conversation=lambda: services.conversation,
            jobs=jobs_for(services),
            channels={"wecom": lambda: build_wecom(services), "dingtalk": lambda: build_dingtalk(services)},
        )

    return services._once("_channels", build)
