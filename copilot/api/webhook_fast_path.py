"""The acknowledgement path of the WeCom and DingTalk message callbacks, as plain ASGI.

A platform's retry storm or a busy group chat delivers hundreds of callbacks at once, and each must be
acknowledged within WeCom's 5 s (we aim for 50 ms). Through the full FastAPI stack an acknowledgement
costs ~2 ms of one core (routing, dependencies, a thread hop, one INSERT and one Redis round trip of its
own), so 200 at once queue for half a second. Here a callback costs what it must:

* verify and decrypt in the event loop (~0.1 ms: SHA1, AES-CBC, a small XML/JSON document);
* **group commit**: callbacks that arrive while a batch is being stored wait for the next batch, and a
  batch is one ``INSERT … ON CONFLICT DO NOTHING`` (the atomic dedup) plus one job-queue round trip
  (``ChannelsService.accept_many``). Alone, a callback is a batch of one: no added delay.

Only the happy path is here. Anything else — a bad signature, a stale timestamp, a malformed or oversized
body, an unconfigured channel, the database or Redis down — falls through, body replayed, to the FastAPI
route in ``routes/channels.py``, which answers with the documented errors. A message is only ever
acknowledged after its id is stored and its reply queued, exactly as on the FastAPI route.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from copilot.api.request_ids import SANE_REQUEST_ID, new_request_id
from copilot.api.routes.channels import MAX_CALLBACK_BYTES
from copilot.infra.jobs.port import pending_acks

if TYPE_CHECKING:
    from connectors.channels.base import InboundMessage
    from copilot.container import Container
    from copilot.infra.metrics import AppMetrics

logger = logging.getLogger(__name__)

MAX_BATCH = 500  # messages per INSERT: well under SQLite's bound-variable limit
WECOM = "/channels/wecom/callback"
DINGTALK = "/channels/dingtalk/callback"
_EMPTY_TEXT = (b"text/plain; charset=utf-8", b"")
_EMPTY_JSON = (b"application/json", b"{}")


class GroupAcceptor:
    """Batches ``accept`` calls on one event loop into ``accept_many`` calls on ``thread``: while a batch
    is stored, the next one gathers. Futures are only ever resolved on their own loop."""

    def __init__(
        self, accept_many: Callable[[list[InboundMessage]], list[bool]], thread: ThreadPoolExecutor
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self._accept_many = accept_many
        self._thread = thread
        self._pending: list[tuple[InboundMessage, asyncio.Future[bool]]] = []
        self._flushing = False

    async def accept(self, message: InboundMessage) -> bool:
        future: asyncio.Future[bool] = self.loop.create_future()
        self._pending.append((message, future))
        if not self._flushing:
            self._flushing = True
            self.loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        loop = self.loop
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                try:
                    results = await loop.run_in_executor(
                        self._thread, self._accept_many, [m for m, _ in batch]
                    )
                except Exception as exc:  # noqa: BLE001 -- every caller of the batch gets the error
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), accepted in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(accepted)
        finally:
            self._flushing = False


class WebhookFastPath:
    """In front of the whole FastAPI stack (``CopilotAPI.__call__``): acknowledges valid WeCom/DingTalk
    message callbacks itself, with the request id and metrics the middleware would add; everything else
    goes on to ``app``."""

    def __init__(self, app: ASGIApp, services: Container, metrics: AppMetrics) -> None:
        self.app = app
        self._services = services
        self._metrics = metrics
        self._acceptor: GroupAcceptor | None = None  # of the serving event loop (one per process)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-ack")
        self._counted: dict[str, tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if scope["type"] != "http" or scope["method"] != "POST" or path not in (WECOM, DINGTALK):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        with pending_acks.owed():
            body, complete, within_limit = await _read_body(scope, receive)
            answer = await self._acknowledge(path, scope, body) if complete and within_limit else None
        if answer is None:  # not ours to answer: the full stack, with the body replayed
            await self.app(scope, _replay(body, complete, receive), send)
            return
        content_type, content = answer
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        rid = given if SANE_REQUEST_ID.match(given) else new_request_id().encode()
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", content_type), (b"content-length", str(len(content)).encode()),
            (b"x-request-id", rid)]})  # fmt: skip
        await send({"type": "http.response.body", "body": content})
        counted = self._counted.get(path)
        if counted is None:  # the labelled children, looked up once
            m = self._metrics
            counted = self._counted[path] = (
                m.requests.labels("POST", path, "200"),
                m.latency.labels("POST", path),
            )
        counted[0].inc()
        counted[1].observe(time.perf_counter() - start)

    async def _acknowledge(self, path: str, scope: Scope, body: bytes) -> tuple[bytes, bytes] | None:
        """The acknowledgement, or None when the full stack must answer (any error)."""
        try:
            svc = self._services.channels
            if path == WECOM:
                query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode("latin-1")).items()}
                message = svc.wecom().parse_callback(
                    body,
                    msg_signature=query["msg_signature"],
                    timestamp=query["timestamp"],
                    nonce=query["nonce"],
                )
            else:
                headers = dict(scope["headers"])
                message = svc.dingtalk().parse_callback(
                    body,
                    timestamp=headers[b"timestamp"].decode("latin-1"),
                    sign=headers[b"sign"].decode("latin-1"),
                )
            acceptor = self._acceptor
            if acceptor is None or acceptor.loop is not asyncio.get_running_loop():  # tests: a loop each
                acceptor = self._acceptor = GroupAcceptor(svc.accept_many, self._thread)
            await acceptor.accept(message)
        except Exception:  # noqa: BLE001 -- the route answers it, with its documented error
            return None
        return _EMPTY_TEXT if path == WECOM else _EMPTY_JSON


async def _read_body(scope: Scope, receive: Receive) -> tuple[bytes, bool, bool]:
    """(what was read, whether that is the whole body, whether it is within the callback size limit);
    stops reading past the limit."""
    declared = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
    if declared.isdigit() and int(declared) > MAX_CALLBACK_BYTES:
        return b"", False, False
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return b"".join(chunks), False, True
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body") or size > MAX_CALLBACK_BYTES:
            return b"".join(chunks), not message.get("more_body"), size <= MAX_CALLBACK_BYTES


def _replay(body: bytes, complete: bool, receive: Receive) -> Receive:
    """``receive`` for the full stack: what was read already, then the rest of the stream."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()

    return replayed
