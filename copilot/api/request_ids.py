"""Every request gets an id: the caller's ``X-Request-ID`` when it is a sane token, else a new one.

A plain ASGI middleware (not ``@app.middleware("http")``): Starlette's BaseHTTPMiddleware wraps each
request in extra tasks and streams, which cost more than the whole webhook acknowledgement.
"""

from __future__ import annotations

import os
import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SANE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")


def new_request_id() -> str:
    return os.urandom(8).hex()  # uuid4() costs 4× more; 64 random bits suffice


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        rid = given.decode() if SANE_REQUEST_ID.match(given) else new_request_id()
        scope.setdefault("state", {})["request_id"] = rid  # what ``request.state.request_id`` reads

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["x-request-id"] = rid
            await send(message)

        await self.app(scope, receive, send_with_id)
