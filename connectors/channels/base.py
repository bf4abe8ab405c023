"""What every chat channel (WeCom, DingTalk, web) hands to the copilot, and what it sends back.

A channel adapter verifies, decrypts, parses and sends; it never decides what to answer.

    ChannelError
    ├── ChannelUnavailable   could not reach the platform, 5xx, rate limit: retry later
    └── ChannelRejected      the platform refused the call (bad credentials, invalid media id …)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, Protocol

import httpx

MessageKind = Literal["text", "voice", "event", "unsupported"]


class ChannelError(Exception):
    """A call to a chat platform failed; ``message`` is Chinese, ``code`` the platform's error code."""

    def __init__(self, message: str, *, channel: str, code: str | int | None = None) -> None:
        self.message = message
        self.channel = channel
        self.code = code
        super().__init__(f"{channel}: {message}" + (f" ({code})" if code is not None else ""))


class ChannelUnavailable(ChannelError):
    """Transient: the platform could not be reached, timed out, or answered 5xx / rate-limited."""


class ChannelRejected(ChannelError):
    """Permanent for this request: the platform refused it."""


class MediaTooLarge(ChannelRejected):
    """A media download exceeded the size limit; nothing was kept."""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One verified, decrypted message from a platform user.

    ``sender_id`` is the platform's user id (WeCom userid, DingTalk staffId); ``media_id`` is WeCom's
    MediaId or DingTalk's downloadCode; ``reply_url`` is DingTalk's sessionWebhook.
    """

    channel: str
    msg_id: str
    sender_id: str
    kind: MessageKind
    text: str = ""
    media_id: str | None = None
    media_format: str | None = None
    event: str | None = None
    event_key: str | None = None
    conversation_id: str | None = None
    reply_url: str | None = None
    reply_url_expires_ms: int | None = None
    robot_code: str | None = None
    created_at: int | None = None  # seconds since the epoch, as the platform stamped it
    response_code: str | None = None  # WeCom card events: a one-time code to update the pressed card


@dataclass(frozen=True, slots=True)
class OutboundReply:
    """A reply to one user. ``markdown`` replies keep their formatting where the platform allows it."""

    text: str
    markdown: bool = False
    title: str = "销售副驾"


class Channel(Protocol):
    """The sending side of a platform; receiving is the route's job (each platform signs differently)."""

    name: str

    def send(self, to: InboundMessage, reply: OutboundReply) -> None:
        """Send ``reply`` to the sender of ``to`` (split into several messages when too long)."""
        ...

    def fetch_media(self, message: InboundMessage) -> bytes:
        """Download the voice/file of ``message``; raise ``MediaTooLarge`` past the size limit."""
        ...


class MalformedMessage(ValueError):
    """The callback body is not a message the platform would send (bad XML/JSON, missing fields)."""


def split_utf8(text: str, max_bytes: int) -> list[str]:
    """Split ``text`` into parts of at most ``max_bytes`` UTF-8 bytes, at line breaks where possible.

    Never cuts a character in two; a part only ends mid-line when one line alone is too long.
    """
    if max_bytes < 4:
        raise ValueError("max_bytes 至少为 4")
    if len(text.encode()) <= max_bytes:
        return [text]
    parts: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        if len((current + line).encode()) <= max_bytes:
            current += line
            continue
        if current:
            parts.append(current)
            current = ""
        while len(line.encode()) > max_bytes:
            cut = _prefix_within(line, max_bytes)
            parts.append(line[:cut])
            line = line[cut:]
        current = line
    if current:
        parts.append(current)
    return [p.rstrip("\n") or p for p in parts]


def _prefix_within(text: str, max_bytes: int) -> int:
    """The largest n with len(text[:n].encode()) <= max_bytes."""
    size = 0
    for i, ch in enumerate(text):
        size += len(ch.encode())
        if size > max_bytes:
            return i
    return len(text)


def read_limited(chunks: Iterable[bytes], *, limit: int, channel: str, declared: str | None = None) -> bytes:
    """Join a streamed download, raising ``MediaTooLarge`` as soon as it passes ``limit`` bytes."""
    if declared and declared.isdigit() and int(declared) > limit:
        raise MediaTooLarge(f"媒体文件超过 {limit} 字节上限", channel=channel)
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise MediaTooLarge(f"媒体文件超过 {limit} 字节上限", channel=channel)
        parts.append(chunk)
    return b"".join(parts)


@contextmanager
def reaching(what: str, *, channel: str) -> Iterator[None]:
    """Around a call to ``what`` (e.g. "企业微信接口"): a timeout or connection failure becomes a
    retryable ``ChannelUnavailable`` with a Chinese message."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise ChannelUnavailable(f"{what}请求超时", channel=channel) from exc
    except httpx.TransportError as exc:
        raise ChannelUnavailable(f"无法连接{what}（{type(exc).__name__}）", channel=channel) from exc


def check_http_status(status_code: int, *, channel: str, what: str) -> None:
    """429/5xx are retryable (``ChannelUnavailable``); any other failure status is permanent."""
    if status_code == 429 or status_code >= 500:
        raise ChannelUnavailable(f"{what}返回 HTTP {status_code}", channel=channel)
    if not 200 <= status_code < 300:
        raise ChannelRejected(f"{what}返回 HTTP {status_code}", channel=channel)


def read_response_limited(response, *, limit: int, channel: str) -> bytes:
    """The body of a streamed httpx response, at most ``limit`` bytes (``MediaTooLarge`` beyond)."""
    return read_limited(
        response.iter_bytes(), limit=limit, channel=channel, declared=response.headers.get("content-length")
    )
