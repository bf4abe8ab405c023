"""The request guard: what is decided before a request body is read (plain ASGI, inside the request-id,
metrics and security-header middleware, in front of FastAPI's routing and body parsing).

In order, answering at the first failure and never reading the body to do so:

1. credentials: bearer token or session cookie (``auth.resolve``), kept for the route dependencies;
   a body sent to ``/api/*`` without valid credentials → 401 ``unauthenticated``;
2. size: a declared ``Content-Length`` above the route's limit → 413 ``payload_too_large``;
3. CSRF: cookie-authenticated state changes need a same-site origin and the session's CSRF token
   → 403 ``csrf_failed`` (``csrf.py``);
4. abuse limits of expensive routes, per user → 429 ``rate_limited`` with ``Retry-After``.

Then the body streams through ``LimitedReceive``: a chunked or under-declared body is cut at the limit
and answered 413, whatever the route was doing with it (its spooled upload is closed with it).
Early answers carry ``Connection: close``, so the server stops receiving the rest of a large body.

Platform callbacks (``/channels/*``, signature-authenticated, own limit), static files, ``/healthz``
and ``/metrics`` pass straight through.
"""

from __future__ import annotations

import json
import logging

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from copilot.api.auth import remember, resolve
from copilot.api.body_limits import (
    BodyTooLarge,
    LimitedReceive,
    body_limit,
    declared_length,
    has_body,
    too_large_detail,
)
from copilot.api.csrf import csrf_failure
from copilot.api.rate_limits import RateLimits, route_limit
from copilot.errors import CATALOGUE, db_unavailable

logger = logging.getLogger(__name__)

PASS_THROUGH_PREFIXES = ("/channels/", "/static/")
PASS_THROUGH_PATHS = frozenset({"/healthz", "/metrics"})


async def send_error(
    scope: Scope,
    send: Send,
    code: str,
    detail: str | None = None,
    *,
    status: int | None = None,
    headers: dict[str, str] | None = None,
    close: bool = False,
) -> None:
    """The API's error shape, ``{"error","detail","request_id"}``, sent from plain ASGI."""
    default_status, default_detail = CATALOGUE[code]
    rid = (scope.get("state") or {}).get("request_id", "")
    body = json.dumps(
        {"error": code, "detail": detail or default_detail, "request_id": rid},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if close:
        raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status or default_status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    def __init__(self, app: ASGIApp, services, limits: RateLimits) -> None:
        self.app = app
        self.services = services
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(PASS_THROUGH_PREFIXES) or path in PASS_THROUGH_PATHS:
            await self.app(scope, receive, send)
            return
        method, settings = scope["method"], self.services.settings
        headers = Headers(scope=scope)
        limit = body_limit(method, path, settings)
        body = has_body(headers)
        try:
            credential = await run_in_threadpool(resolve, self.services, headers)
        except Exception as exc:  # noqa: BLE001 -- the documented errors, as the handlers would send
            if db_unavailable(exc):
                logger.warning("database unavailable: %s (guard)", type(exc).__name__)
                await send_error(scope, send, "db_unavailable", headers={"Retry-After": "5"}, close=body)
            else:
                logger.error("credential check failed: %s", type(exc).__name__, exc_info=exc)
                await send_error(scope, send, "internal_error", close=body)
            return
        remember(scope, credential)
        if body and credential is None and path.startswith("/api/"):
            await send_error(scope, send, "unauthenticated", close=True)
            return
        declared = declared_length(headers)
        if limit is not None and declared is not None and declared > limit:
            detail = too_large_detail(method, path, settings)
            await send_error(scope, send, "payload_too_large", detail, close=True)
            return
        problem = csrf_failure(method, path, headers, credential)
        if problem is not None:
            logger.warning("csrf check refused %s %s", method, path)
            await send_error(scope, send, "csrf_failed", problem, close=body)
            return
        name = route_limit(method, path)
        if name is not None and credential is not None:
            retry_after = await self.limits.hit(name, credential.user.id)
            if retry_after is not None:
                logger.info("rate limit %s reached by user %s", name, credential.user.id)
                await send_error(scope, send, "rate_limited", headers={"Retry-After": str(int(retry_after))},
                                 close=body)  # fmt: skip
                return
        if not body or limit is None:
            await self.app(scope, receive, send)
            return
        await self._limited(scope, receive, send, limit, too_large_detail(method, path, settings))

    async def _limited(self, scope: Scope, receive: Receive, send: Send, limit: int, detail: str) -> None:
        limited = LimitedReceive(receive, limit)
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if limited.exceeded:  # the app's own answer to the cut body (400, 422, 500…) is dropped
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, guarded_send)
        except BodyTooLarge:
            pass
        except Exception:
            if not limited.exceeded:
                raise
        if limited.exceeded and not started:
            logger.info("request body over %s bytes refused (%s)", limit, scope.get("path"))
            await send_error(scope, send, "payload_too_large", detail, close=True)
