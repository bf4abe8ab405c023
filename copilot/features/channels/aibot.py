"""WeCom AI bot (企业微信智能机器人) glue: acknowledge with a stream at once, answer as a job, let
WeCom poll the stream until it is finished.

    aibot = container.aibot
    message = aibot.bot.parse_callback(body, ...)   # the route verifies and parses
    state = aibot.receive(message)                  # the stream to answer with now, or None (empty 200)
    # … on a job thread: aibot.answer(message, stream_id) → identity → conversation → channel_streams

A new message id inserts its ``channel_messages`` row (the atomic dedup, as for the other channels)
and its ``channel_streams`` row in one transaction, then queues the answer; the stream id is derived
from the message id, so a repeat delivery gets the same stream back and starts nothing. Refresh
callbacks read the stream row, so any API process can answer them; while a model writes its answer
the row holds the text so far (``_PartialStream``), so WeCom shows it growing. The finished answer is also
posted to the message's ``response_url`` when WeCom has stopped polling (``COPILOT_WECOM_AIBOT_PUSH``).
Rows hold ids, statuses and the reply text for WeCom to collect; logs hold ids only.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from connectors.channels.base import ChannelError
from connectors.channels.wecom_aibot import CHANNEL, AIBotMessage, ResponseURLClient, WeComAIBot
from copilot.errors import AppError
from copilot.features.channels import inbox
from copilot.features.channels.adapters import PUSH_MODES
from copilot.features.channels.inbox import channel_messages
from copilot.features.channels.render import FAILED, PLATFORM_NAMES, UNBOUND, UNSUPPORTED, format_answer
from copilot.features.channels.router import channel_key
from copilot.storage import tables as t

if TYPE_CHECKING:
    from copilot.features.channels.router import ConversationPort
    from copilot.identity.users import UserDirectory
    from copilot.infra.jobs import JobQueue

logger = logging.getLogger(__name__)

channel_streams = t.channel_streams

THINKING = "正在思考…"
STREAM_GONE = "这条回复已过期，请重新提问。"
EMPTY_QUESTION = "您好！请在 @我 之后直接输入问题，例如：客户嫌贵怎么回？"
STREAM_WINDOW_S = 300.0  # WeCom polls a stream for at most 6 minutes after the user's message
MAX_KEY = 128  # channel_streams.msg_id


@dataclass(frozen=True, slots=True)
class StreamState:
    stream_id: str
    content: str
    finished: bool


def message_key(msg_id: str) -> str:
    """The message id as stored (long ids hashed to fit both tables)."""
    return inbox.message_key(msg_id, MAX_KEY)


def stream_id_for(msg_id: str) -> str:
    """One stream per message: every delivery of a message id maps to the same stream id."""
    return "cp" + hashlib.sha256(f"{CHANNEL}:{msg_id}".encode()).hexdigest()[:40]


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)  # SQLite returns naive UTC


class AIBotService:
    def __init__(
        self,
        *,
        engine: Engine,
        users: UserDirectory,
        conversation: Callable[[], ConversationPort],
        jobs: JobQueue,
        bot: WeComAIBot,
        responder: ResponseURLClient | None = None,
        push: str = "late",
        stream_window_s: float = STREAM_WINDOW_S,
    ) -> None:
        if push not in PUSH_MODES:
            raise ValueError(f"push 应为 {', '.join(PUSH_MODES)} 之一")
        self._engine = engine
        self._users = users
        self._conversation = conversation
        self.jobs = jobs
        self.bot = bot
        self.responder = responder
        self.push = push
        self.stream_window_s = stream_window_s

    # -- receive (in the request) ------------------------------------------------------------------
    def receive(self, message: AIBotMessage) -> StreamState | None:
        """What to answer this callback with: a stream, or None for an empty reply (events)."""
        if message.kind == "event":
            return None
        if message.kind == "stream":
            stream_id = message.stream_id or ""
            return self.current(stream_id) or StreamState(stream_id, STREAM_GONE, True)
        return self._start(message)

    def current(self, stream_id: str) -> StreamState | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(channel_streams.c.content, channel_streams.c.finished).where(
                    channel_streams.c.stream_id == stream_id, channel_streams.c.channel == CHANNEL
                )
            ).first()
        return None if row is None else StreamState(stream_id, row.content, bool(row.finished))

    def _start(self, message: AIBotMessage) -> StreamState:
        stream_id = stream_id_for(message.msg_id)
        key = message_key(message.msg_id)
        now = datetime.now(UTC)
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    insert(channel_messages).values(
                        channel=CHANNEL, msg_id=key, kind=message.kind, status="received", received_at=now
                    )
                )
                conn.execute(
                    insert(channel_streams).values(
                        stream_id=stream_id, channel=CHANNEL, msg_id=key, content=THINKING, finished=False,
                        created_at=now, updated_at=now,
                    )
                )  # fmt: skip
        except IntegrityError:
            logger.info("%s message %s is a repeat delivery; stream %s", CHANNEL, key, stream_id)
            return self.current(stream_id) or StreamState(stream_id, THINKING, False)
        try:
            self._submit(message, stream_id)
        except Exception:  # e.g. Redis down: forget the message so that WeCom's retry starts it again
            with self._engine.begin() as conn:
                conn.execute(delete(channel_streams).where(channel_streams.c.stream_id == stream_id))
                conn.execute(
                    delete(channel_messages).where(
                        channel_messages.c.channel == CHANNEL, channel_messages.c.msg_id == key
                    )
                )
            raise
        return StreamState(stream_id, THINKING, False)

    def _submit(self, message: AIBotMessage, stream_id: str) -> None:
        self.jobs.submit("answer_aibot", message, stream_id)

    # -- answer (the ``answer_aibot`` job; at least once on Redis, so idempotent) ---------------------
    def answer(self, message: AIBotMessage, stream_id: str) -> None:
        state = self.current(stream_id)
        if state is None or state.finished:
            return
        key = message_key(message.msg_id)
        user = self._users.by_channel_id(wecom_userid=message.sender_id)
        user_id = None if user is None else user.id
        status = "replied"
        if user is None:
            logger.info("%s message %s from an unbound account", CHANNEL, key)
            text, status = UNBOUND.format(platform=PLATFORM_NAMES["wecom"]), "unbound"
        elif message.kind == "unsupported":
            text = UNSUPPORTED
        elif not message.text:
            text = EMPTY_QUESTION
        else:
            try:
                chat = channel_key(CHANNEL, message.sender_id, message.chat_id)
                partial = _PartialStream(self._engine, stream_id)
                answer = self._conversation().reply(user, message.text, channel_key=chat, on_delta=partial)
                text = format_answer(answer)
                logger.info("%s message %s answered for user %s (%d citations)", CHANNEL, key, user.id,
                            len(answer.citations))  # fmt: skip
            except AppError as error:  # e.g. a too long message: tell the rep why
                text = error.detail
            except Exception as exc:
                logger.error("%s message %s for user %s failed: %s", CHANNEL, key, user.id,
                             type(exc).__name__, exc_info=True)  # fmt: skip
                text, status = FAILED, "failed"
        created = self._finish(stream_id, text)
        with self._engine.begin() as conn:
            conn.execute(
                update(channel_messages)
                .where(channel_messages.c.channel == CHANNEL, channel_messages.c.msg_id == key)
                .values(status=status, user_id=user_id, done_at=datetime.now(UTC))
            )
        if created is not None:
            self._push(message, stream_id, text, created)

    def _finish(self, stream_id: str, text: str) -> datetime | None:
        """Write the final text once; the stream's creation time, or None if it was finished already."""
        with self._engine.begin() as conn:
            done = conn.execute(
                update(channel_streams)
                .where(channel_streams.c.stream_id == stream_id, channel_streams.c.finished.is_(False))
                .values(content=text, finished=True, updated_at=datetime.now(UTC))
            )
            if done.rowcount != 1:
                return None
            created = conn.execute(
                select(channel_streams.c.created_at).where(channel_streams.c.stream_id == stream_id)
            ).scalar_one()
        return _aware(created)

    def _push(self, message: AIBotMessage, stream_id: str, text: str, created: datetime) -> None:
        """Post the answer to response_url too: always, or when WeCom has stopped polling ("late")."""
        if self.responder is None or not message.response_url or self.push == "off":
            return
        late = (datetime.now(UTC) - created).total_seconds() > self.stream_window_s
        if self.push == "late" and not late:
            return
        try:
            self.responder.post_markdown(message.response_url, text)
        except ChannelError as exc:  # the stream still holds the answer
            logger.warning("%s stream %s not pushed to response_url: %s %s", CHANNEL, stream_id,
                           type(exc).__name__, exc.code)  # fmt: skip
            return
        logger.info("%s stream %s pushed to response_url", CHANNEL, stream_id)


class _PartialStream:
    """A model's answer as it is written, into the stream WeCom refreshes (at most every
    ``every_s``; the finished, cited answer replaces it)."""

    def __init__(self, engine: Engine, stream_id: str, every_s: float = 0.5) -> None:
        self._engine, self._stream_id, self._every_s = engine, stream_id, every_s
        self._text = ""
        self._last = 0.0

    def __call__(self, piece: str) -> None:
        self._text += piece
        now = time.monotonic()
        if now - self._last < self._every_s:
            return
        self._last = now
        with self._engine.begin() as conn:
            conn.execute(
                update(channel_streams)
                .where(channel_streams.c.stream_id == self._stream_id, channel_streams.c.finished.is_(False))
                .values(content=self._text + "…", updated_at=datetime.now(UTC))
            )
