"""Request-body size limits per route class, enforced while the body streams in.

    limit = body_limit("POST", "/api/memos", settings)   # COPILOT_MAX_UPLOAD_BYTES + multipart overhead
    declared_length(headers) > limit                      # → 413 before a byte of the body is read
    receive = LimitedReceive(receive, limit)              # chunked or lying clients: 413 at limit + 1

Classes: memo uploads (``POST /api/memos``) up to ``COPILOT_MAX_UPLOAD_BYTES``; every other body (the
JSON API, the login form) up to ``COPILOT_MAX_JSON_BYTES`` (1 MiB); the platform callbacks under
``/channels/`` keep their own 64 KiB limit (``routes/channels.py``, ``webhook_fast_path.py``).
The proxy in front should refuse the same sizes first (deploy/nginx.conf: ``client_max_body_size``).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import Message, Receive

from copilot.settings import Settings

UPLOAD_PATH = "/api/memos"
MULTIPART_OVERHEAD = 64 * 1024  # boundaries, part headers and the customer_id field around the file
CALLBACKS = "/channels/"


def body_limit(method: str, path: str, settings: Settings) -> int | None:
    """The most bytes a request body may have on this route; None = the route enforces its own."""
    if path.startswith(CALLBACKS):
        return None
    if method == "POST" and path.rstrip("/") == UPLOAD_PATH:
        return settings.max_upload_bytes + MULTIPART_OVERHEAD
    return settings.max_json_bytes


def too_large_detail(method: str, path: str, settings: Settings) -> str:
    if method == "POST" and path.rstrip("/") == UPLOAD_PATH:
        return f"文件过大：最大支持 {settings.max_upload_bytes // (1024 * 1024)} MB，请压缩或分段上传。"
    return f"请求体过大：最大 {max(1, settings.max_json_bytes // 1024)} KB。"


def declared_length(headers: Headers) -> int | None:
    value = headers.get("content-length", "")
    return int(value) if value.isdigit() else None


def has_body(headers: Headers) -> bool:
    """Whether the request announces a body (a length above 0, or chunked transfer)."""
    length = headers.get("content-length")
    if length is not None:
        return length.strip() != "0"
    return "transfer-encoding" in headers


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` past the limit; the guard answers 413 instead of whatever the app does."""

    def __init__(self) -> None:
        super().__init__(status_code=413)


class LimitedReceive:
    """``receive`` that counts body bytes and raises BodyTooLarge as soon as they pass ``limit``."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self.limit = limit
        self.received = 0
        self.exceeded = False

    async def __call__(self) -> Message:
        if self.exceeded:
            raise BodyTooLarge()
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.exceeded = True
                raise BodyTooLarge()
        return message
