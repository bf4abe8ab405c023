"""WeCom AI bot (企业微信智能机器人, API mode): JSON callbacks, stream replies, and ``response_url``.

    bot = WeComAIBot(MessageCrypto(token, aes_key, ""))                  # the receive id is ""
    echo = bot.verify_url(msg_signature, timestamp, nonce, echostr)      # GET: URL verification
    message = bot.parse_callback(body, msg_signature=..., timestamp=..., nonce=...)   # POST
    body = bot.stream_reply(stream_id, "正在思考…", finish=False)          # the encrypted JSON answer
    ResponseURLClient().post_markdown(message.response_url, "…")         # later, once, within 1 h

The protocol, from developer.work.weixin.qq.com/document/path/…:

- 101033 回调和回复的加解密方案: the POST body is ``{"encrypt"}``, signed like every WeCom callback
  (``msg_signature``/``timestamp``/``nonce`` in the query); the receive id is ""; a passive reply is
  ``{"encrypt", "msgsignature", "timestamp", "nonce"}``, or an empty body.
- 100719 接收消息: the plaintext is ``{"msgid", "aibotid", "chatid"?, "chattype": "single|group",
  "from": {"userid"}, "response_url", "msgtype", …}`` with ``text.content`` ("@机器人 问题" in
  groups), ``voice.content`` (already transcribed), or ``stream.id`` for a 流式消息刷新: after a stream
  reply WeCom keeps calling back with the stream id until ``finish`` (at most 6 minutes after the
  user's message).
- 101031 被动回复消息: ``{"msgtype": "stream", "stream": {"id", "finish", "content"}}``; content is
  Markdown, at most 20480 bytes of UTF-8.
- 101138 主动回复消息: POST ``{"msgtype": "markdown", "markdown": {"content"}}`` to ``response_url``;
  each URL works once, for one hour.

Checks run in the self-built app's order: signature first, then the replay window, then decryption
and parsing. Failures raise ``CryptoError`` or ``MalformedMessage``; nothing here logs content.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from connectors.channels.base import (
    ChannelRejected,
    ChannelUnavailable,
    MalformedMessage,
    reaching,
    split_utf8,
)
from connectors.channels.crypto import MessageCrypto, check_timestamp
from connectors.http import make_client

CHANNEL = "wecom_aibot"
REPLAY_WINDOW_S = 300
MAX_CONTENT_BYTES = 20480  # stream.content and markdown.content
TRUNCATED = "\n\n……（内容过长，已截断）"

AIBotKind = Literal["text", "voice", "stream", "event", "unsupported"]

# One or more leading "@name" mentions (WeCom separates them with a space, U+2005 or U+00A0).
_LEADING_MENTIONS = re.compile(r"^(?:\s*@[^\s@]+)+\s*")


@dataclass(frozen=True, slots=True)
class AIBotMessage:
    """One decrypted AI-bot callback. ``kind`` "stream" is a refresh of ``stream_id``."""

    msg_id: str
    kind: AIBotKind
    sender_id: str
    msgtype: str
    text: str = ""
    chat_type: str = "single"
    chat_id: str | None = None
    response_url: str | None = None
    stream_id: str | None = None
    event: str | None = None
    aibot_id: str | None = None


def strip_mention(text: str) -> str:
    """The question without the leading ``@机器人`` of a group message."""
    return _LEADING_MENTIONS.sub("", text, count=1).strip()


def clip(content: str, max_bytes: int = MAX_CONTENT_BYTES) -> str:
    """``content`` within ``max_bytes`` of UTF-8, cut at a line break where possible and marked."""
    if len(content.encode()) <= max_bytes:
        return content
    return split_utf8(content, max_bytes - len(TRUNCATED.encode()))[0] + TRUNCATED


def _loads(data: str | bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise MalformedMessage(f"{what}不是有效的 JSON") from exc
    if not isinstance(value, dict):
        raise MalformedMessage(f"{what}应为 JSON 对象")
    return value


def _text(data: dict[str, Any], key: str, *, required: bool = True) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise MalformedMessage(f"缺少字段 {key}")
    return value


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise MalformedMessage(f"缺少字段 {key}")
    return value


def parse_envelope(body: bytes) -> str:
    """The POSTed ``{"encrypt": …}`` → the ciphertext."""
    return _text(_loads(body, "回调消息体"), "encrypt")


def parse_message(plain: str) -> AIBotMessage:
    """A decrypted callback → AIBotMessage; message types we do not answer become ``unsupported``."""
    data = _loads(plain, "解密后的消息")
    msgtype = _text(data, "msgtype")
    sender = _text(_section(data, "from"), "userid")
    chat_type = _text(data, "chattype", required=False) or "single"
    common: dict[str, Any] = {
        "sender_id": sender,
        "msgtype": msgtype,
        "chat_type": chat_type,
        "chat_id": _text(data, "chatid", required=False) or None,
        "response_url": _text(data, "response_url", required=False) or None,
        "aibot_id": _text(data, "aibotid", required=False) or None,
    }
    if msgtype == "event":
        event = _text(_section(data, "event"), "eventtype", required=False) or None
        return AIBotMessage(_text(data, "msgid", required=False), "event", event=event, **common)
    msg_id = _text(data, "msgid")
    if msgtype == "stream":
        return AIBotMessage(msg_id, "stream", stream_id=_text(_section(data, "stream"), "id"), **common)
    if msgtype == "text":
        text = _text(_section(data, "text"), "content", required=False)
        text = strip_mention(text) if chat_type == "group" else text.strip()
        return AIBotMessage(msg_id, "text", text=text, **common)
    if msgtype == "voice":
        return AIBotMessage(
            msg_id, "voice", text=_text(_section(data, "voice"), "content", required=False).strip(), **common
        )
    return AIBotMessage(msg_id, "unsupported", **common)


def stream_payload(stream_id: str, content: str, *, finish: bool) -> dict[str, Any]:
    """The plaintext of a stream reply (content clipped to the 20480-byte limit)."""
    return {"msgtype": "stream", "stream": {"id": stream_id, "finish": finish, "content": clip(content)}}


def build_envelope(encrypt: str) -> str:
    """A callback body as WeCom posts it (tests and fakes)."""
    return json.dumps({"encrypt": encrypt})


class WeComAIBot:
    """The receiving side of one AI bot (its Token and EncodingAESKey)."""

    name = CHANNEL

    def __init__(
        self,
        crypto: MessageCrypto,
        *,
        replay_window_s: float = REPLAY_WINDOW_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if crypto.receive_id != "":
            raise ValueError("企业微信智能机器人的 receive id 应为空字符串")
        self.crypto = crypto
        self._window = replay_window_s
        self._clock = clock

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """URL verification (GET): the decrypted ``echostr`` to answer as plain text."""
        echo = self.crypto.verify_url(msg_signature, timestamp, nonce, echostr)  # signature first
        check_timestamp(timestamp, now=self._clock(), window=self._window)
        return echo

    def parse_callback(self, body: bytes, *, msg_signature: str, timestamp: str, nonce: str) -> AIBotMessage:
        encrypt = parse_envelope(body)
        self.crypto.verify(msg_signature, timestamp, nonce, encrypt)
        check_timestamp(timestamp, now=self._clock(), window=self._window)
        return parse_message(self.crypto.open_verified(encrypt))

    def stream_reply(
        self, stream_id: str, content: str, *, finish: bool, nonce: str | None = None
    ) -> dict[str, str]:
        """The encrypted passive reply carrying the stream's current content."""
        plain = json.dumps(stream_payload(stream_id, content, finish=finish), ensure_ascii=False)
        enc = self.crypto.encrypt(plain, nonce=nonce)
        return {"encrypt": enc.encrypt, "msgsignature": enc.signature, "timestamp": enc.timestamp,
                "nonce": enc.nonce}  # fmt: skip


def origin(url: str) -> tuple[str, str, int | None]:
    parts = httpx.URL(url)
    return parts.scheme.lower(), parts.host.lower(), parts.port


class ResponseURLClient:
    """Posts the one active reply a ``response_url`` allows; only URLs on ``allowed_base``'s origin.

    The URL comes from an authenticated callback, but it is still checked against the configured
    WeCom API base, so a callback can never make us post to an arbitrary host.
    """

    def __init__(
        self,
        *,
        allowed_base: str,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.allowed_base = allowed_base
        self._http = make_client(allowed_base, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def post_markdown(self, response_url: str, content: str) -> None:
        try:
            allowed = origin(response_url) == origin(self.allowed_base)
        except httpx.InvalidURL:
            allowed = False
        if not allowed:
            raise ChannelRejected("response_url 不属于配置的企业微信接口地址", channel=CHANNEL)
        payload = {"msgtype": "markdown", "markdown": {"content": clip(content)}}
        with reaching("企业微信 response_url", channel=CHANNEL):
            response = self._http.post(response_url, json=payload)
        if response.status_code == 429 or response.status_code >= 500:
            raise ChannelUnavailable(
                f"企业微信 response_url 返回 HTTP {response.status_code}", channel=CHANNEL
            )
        if not response.is_success:
            raise ChannelRejected(f"企业微信 response_url 返回 HTTP {response.status_code}", channel=CHANNEL)
        try:
            data = response.json()
        except ValueError:
            data = {}
        code = data.get("errcode", 0) if isinstance(data, dict) else 0
        if code not in (0, None):
            raise ChannelRejected(
                f"企业微信 response_url 错误：{data.get('errmsg') or code}", channel=CHANNEL, code=code
            )
