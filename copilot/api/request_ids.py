"""Every request gets an id: the caller's ``X-Request-ID`` when it is a sane token, else a new one.

A plain ASGI middleware (not ``@app.middleware("http")``): Starlette's BaseHTTPMiddleware wraps each
request in extra tasks and streams, which cost more than the whole webhook acknowledgement.
"""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_SANE = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        rid = given.decode() if _SANE.match(given) else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = rid  # what ``request.state.request_id`` reads

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["x-request-id"] = rid
            await send(message)

        await self.app(scope, receive, send_with_id)
