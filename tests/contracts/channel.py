"""The one contract every chat channel adapter keeps (connectors/channels/base.py ``Channel``, plus the
adapter's ``parse_callback``), run by tests/connectors/channels/test_channel_contract.py against
WeComChannel and DingTalkChannel, each talking to its fake platform on 127.0.0.1 (tests/fakes).

A subclass provides the fixture ``env`` → a ``ChannelEnv``: the channel, the platform's limits, and
how to build signed callbacks, put media on the fake platform and read what the platform received.
Callbacks are built the way the platform builds them, so every message in these tests went through
``parse_callback`` (verify, decrypt, parse) before the channel answers it.
"""

from __future__ import annotations

import socket
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import pytest

from connectors.channels.base import (
    ChannelUnavailable,
    InboundMessage,
    MalformedMessage,
    MediaTooLarge,
    OutboundReply,
)
from connectors.channels.crypto import CryptoError


@dataclass(frozen=True)
class Callback:
    """One POSTed callback: its body and the keyword arguments ``parse_callback`` takes besides it
    (WeCom: msg_signature, timestamp, nonce from the query; DingTalk: the timestamp and sign headers)."""

    body: bytes
    auth: dict[str, str]


@dataclass(frozen=True)
class Sent:
    """One message the fake platform accepted: to whom, its content, and whether it was Markdown."""

    to: str
    text: str
    markdown: bool


class ChannelEnv(ABC):
    channel: object  # the adapter under test: Channel plus parse_callback(body, **auth)
    text_limit: int  # bytes per message the platform accepts
    media_limit: int  # bytes fetch_media accepts (set small here, so the test stays small)
    replay_window_s: float  # how old a callback's timestamp may be

    def parse(self, callback: Callback, channel: object | None = None) -> InboundMessage:
        return (channel or self.channel).parse_callback(callback.body, **callback.auth)

    @abstractmethod
    def text_callback(self, sender: str, text: str, *, msg_id: str, at: float | None = None) -> Callback:
        """A signed text-message callback from ``sender``, stamped ``at`` (default: now)."""

    @abstractmethod
    def voice_callback(self, sender: str, media_id: str, *, msg_id: str) -> Callback:
        """A signed voice-message callback whose audio is ``media_id`` on the platform."""

    @abstractmethod
    def forged(self, callback: Callback) -> Callback:
        """``callback`` with its signature made by someone without the app's secret."""

    @abstractmethod
    def malformed_callbacks(self) -> list[Callback]:
        """Correctly signed (where the signature covers the body) callbacks whose body is not a message
        the platform sends: unparseable, the wrong shape, a required field missing."""

    @abstractmethod
    def put_media(self, media_id: str, data: bytes) -> None:
        """Make ``data`` downloadable on the fake platform as ``media_id``."""

    @abstractmethod
    def sent(self) -> list[Sent]:
        """Every message the fake platform accepted, in order."""

    @abstractmethod
    def unreachable_channel(self) -> object:
        """The same adapter, configured for a platform on a closed port of 127.0.0.1."""


def closed_port() -> int:
    """A port of 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def audio(size: int) -> bytes:
    """``size`` bytes of every byte value (an AMR header first): nothing may be decoded or trimmed."""
    head = b"#!AMR\n"
    body = bytes(range(256)) * (size // 256 + 1)
    return (head + body)[:size]


def long_paragraph(min_bytes: int) -> str:
    """One line of 1-, 3- and 4-byte UTF-8 characters, longer than ``min_bytes`` bytes."""
    unit = "客户关注交付周期，下周约张总面谈 😀 quote v2; "
    return unit * (min_bytes // len(unit.encode()) + 1)


class ChannelContract:
    # -- receiving ----------------------------------------------------------------------------------
    def test_a_signed_text_callback_parses_to_the_senders_message(self, env: ChannelEnv):
        message = env.parse(env.text_callback("lilei", "华星电子的报价发了吗？", msg_id="m-1"))

        assert message.channel == env.channel.name and message.kind == "text"
        assert message.sender_id == "lilei" and message.text == "华星电子的报价发了吗？"
        assert message.msg_id

    def test_a_redelivered_callback_has_the_same_message_id(self, env: ChannelEnv):
        # platforms retry a callback they think failed; the message id is what deduplicates it
        first = env.parse(env.text_callback("lilei", "你好", msg_id="m-2"))
        again = env.parse(env.text_callback("lilei", "你好", msg_id="m-2"))
        other = env.parse(env.text_callback("lilei", "你好", msg_id="m-3"))

        assert first.msg_id == again.msg_id != other.msg_id

    def test_a_callback_with_a_bad_signature_is_refused(self, env: ChannelEnv):
        callback = env.text_callback("lilei", "你好", msg_id="m-4")

        with pytest.raises(CryptoError) as refused:
            env.parse(env.forged(callback))

        assert refused.value.code == "bad_signature"
        assert env.parse(callback).text == "你好"  # the genuine one still passes

    def test_a_stale_callback_is_refused_as_a_replay(self, env: ChannelEnv):
        stale = env.text_callback("lilei", "你好", msg_id="m-5", at=time.time() - 2 * env.replay_window_s)

        with pytest.raises(CryptoError) as refused:
            env.parse(stale)

        assert refused.value.code == "expired_timestamp"

    def test_a_malformed_body_raises_malformed_message(self, env: ChannelEnv):
        bodies = env.malformed_callbacks()
        assert bodies

        for callback in bodies:
            with pytest.raises(MalformedMessage):
                env.parse(callback)

    # -- sending --------------------------------------------------------------------------------------
    def test_a_text_reply_reaches_the_sender(self, env: ChannelEnv):
        message = env.parse(env.text_callback("lilei", "报价呢？", msg_id="m-6"))

        env.channel.send(message, OutboundReply("报价单已于今天上午发出。"))

        assert env.sent() == [Sent("lilei", "报价单已于今天上午发出。", markdown=False)]

    def test_a_markdown_reply_arrives_as_markdown(self, env: ChannelEnv):
        message = env.parse(env.text_callback("lilei", "下一步？", msg_id="m-7"))

        env.channel.send(message, OutboundReply("**下一步**：约张总面谈", markdown=True))

        assert env.sent() == [Sent("lilei", "**下一步**：约张总面谈", markdown=True)]

    def test_a_long_reply_is_split_under_the_limit_and_nothing_is_lost(self, env: ChannelEnv):
        message = env.parse(env.text_callback("lilei", "总结一下", msg_id="m-8"))
        text = long_paragraph(int(2.5 * env.text_limit))

        env.channel.send(message, OutboundReply(text))

        sent = env.sent()
        assert len(sent) >= 3 and {s.to for s in sent} == {"lilei"}
        assert all(len(s.text.encode()) <= env.text_limit for s in sent)
        assert "".join(s.text for s in sent) == text  # no character cut in two, dropped or repeated

    def test_a_long_multiline_reply_is_split_at_line_breaks(self, env: ChannelEnv):
        message = env.parse(env.text_callback("lilei", "列一下", msg_id="m-9"))
        lines = [f"{i}. 华星电子 产线监测二期 跟进事项：" + "确认交付周期" * 12 for i in range(1, 80)]
        text = "\n".join(lines)
        assert len(text.encode()) > 2 * env.text_limit

        env.channel.send(message, OutboundReply(text))

        parts = [s.text for s in env.sent()]
        assert len(parts) >= 3 and all(len(p.encode()) <= env.text_limit for p in parts)
        assert all(set(p.split("\n")) <= set(lines) for p in parts)  # whole lines only
        assert "\n".join(parts) == text

    # -- media ----------------------------------------------------------------------------------------------
    def test_a_voice_messages_media_is_fetched_as_the_exact_bytes(self, env: ChannelEnv):
        data = audio(env.media_limit)  # exactly at the limit: still accepted
        env.put_media("MEDIA-1", data)
        message = env.parse(env.voice_callback("lilei", "MEDIA-1", msg_id="m-10"))

        assert message.kind == "voice" and message.sender_id == "lilei"
        assert env.channel.fetch_media(message) == data

    def test_media_over_the_limit_raises_media_too_large(self, env: ChannelEnv):
        env.put_media("BIG", audio(env.media_limit + 1))
        message = env.parse(env.voice_callback("lilei", "BIG", msg_id="m-11"))

        with pytest.raises(MediaTooLarge) as refused:
            env.channel.fetch_media(message)

        assert refused.value.channel == env.channel.name

    # -- the platform down ----------------------------------------------------------------------------------
    def test_an_unreachable_platform_is_channel_unavailable(self, env: ChannelEnv):
        dead = env.unreachable_channel()
        text = env.parse(env.text_callback("lilei", "在吗", msg_id="m-12"), channel=dead)
        voice = env.parse(env.voice_callback("lilei", "MEDIA-2", msg_id="m-13"), channel=dead)

        with pytest.raises(ChannelUnavailable) as send_failed:
            dead.send(text, OutboundReply("在的"))
        with pytest.raises(ChannelUnavailable) as fetch_failed:
            dead.fetch_media(voice)

        assert send_failed.value.channel == fetch_failed.value.channel == env.channel.name
        assert env.sent() == []  # nothing reached the live fake instead
