"""A fake DingTalk Stream gateway on 127.0.0.1: the connection-open API and the websocket behind it.

    POST /v1.0/gateway/connections/open   {"clientId","clientSecret","subscriptions",…} → {"endpoint","ticket"}
                                          wrong credentials → 401 {"code","message"}
    WS   /connect?ticket=…                a ticket works once; unknown tickets are refused (403)

    with FakeDingTalkStream.running(client_id="k", client_secret="s") as gateway:
        gateway.wait_connected()
        frame_id = gateway.push_robot_message({...})    # a CALLBACK frame on the open socket
        ack = gateway.wait_for_ack(frame_id)             # {"at", "ack"}; gateway.ack_latency(frame_id)
        gateway.ping(); gateway.disconnect(); gateway.drop()

``api=`` mounts another fake ASGI app (the fake DingTalk API) behind these routes, because the real
gateway shares ``api.dingtalk.com`` with the robot's other APIs. Faults: ``fail_opens = n`` answers
the next n open calls with 503. The websocket framing is uvicorn's (the ``websockets`` library);
this file only scripts frames and records acks.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.support.servers import serve_in_thread

__all__ = ["ROBOT_TOPIC", "FakeDingTalkStream"]

ROBOT_TOPIC = "/v1.0/im/bot/messages/get"
OPEN_PATH = "/v1.0/gateway/connections/open"


class FakeDingTalkStream:
    def __init__(
        self, *, client_id: str = "dingkey", client_secret: str = "dingsecret", api: Any = None
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.url = ""
        self.open_requests: list[dict[str, Any]] = []
        self.acks: list[dict[str, Any]] = []
        self.sent_at: dict[str, float] = {}
        self.connections = 0  # websocket sessions accepted
        self.refused_tickets = 0
        self.fail_opens = 0
        self._tickets: set[str] = set()
        self._socket: WebSocket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cond = threading.Condition()
        self._seq = 0
        routes: list[Any] = [
            Route(OPEN_PATH, self._open, methods=["POST"]),
            WebSocketRoute("/connect", self._websocket),
        ]
        if api is not None:
            routes.append(Mount("", app=api))
        self.app = Starlette(routes=routes)

    @classmethod
    @contextmanager
    def running(cls, **kwargs: Any) -> Iterator[FakeDingTalkStream]:
        fake = cls(**kwargs)
        with serve_in_thread(fake.app) as url:
            fake.url = url
            yield fake

    # -- controls (called from the test thread) ------------------------------------------------------
    def wait_connected(self, n: int = 1, timeout: float = 10.0) -> None:
        """Block until ``n`` websocket sessions have been accepted in all, the last one still open."""
        self._wait(lambda: self.connections >= n and self._socket is not None, timeout, f"{n} connections")

    def push_robot_message(self, message: dict[str, Any], *, frame_id: str | None = None) -> str:
        """A CALLBACK frame on the robot topic whose ``data`` is ``message`` as a JSON string."""
        return self._push("CALLBACK", ROBOT_TOPIC, json.dumps(message, ensure_ascii=False), frame_id)

    def ping(self) -> str:
        return self._push("SYSTEM", "ping", json.dumps({"opaque": secrets.token_hex(8)}), None)

    def disconnect(self) -> str:
        """The gateway's notice that it will close this connection soon; the client should reconnect."""
        return self._push("SYSTEM", "disconnect", json.dumps({"reason": "gateway restart"}), None)

    def drop(self) -> None:
        """Close the open socket with an error code (as a network failure or gateway crash would)."""
        socket = self._socket
        assert socket is not None and self._loop is not None, "no client is connected"
        asyncio.run_coroutine_threadsafe(socket.close(code=1011), self._loop).result(5)

    def wait_for_ack(self, frame_id: str, timeout: float = 5.0) -> dict[str, Any]:
        self._wait(lambda: self._ack(frame_id) is not None, timeout, f"the ack of {frame_id}")
        ack = self._ack(frame_id)
        assert ack is not None
        return ack

    def ack_latency(self, frame_id: str) -> float:
        """Seconds from pushing the frame to receiving its ack."""
        ack = self._ack(frame_id)
        assert ack is not None, f"{frame_id} was not acked"
        return ack["at"] - self.sent_at[frame_id]

    # -- internals -----------------------------------------------------------------------------------------
    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not ready():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what}; acks so far: {self.acks}")
                self._cond.wait(left)

    def _ack(self, frame_id: str) -> dict[str, Any] | None:
        with self._cond:
            return next(
                (a for a in self.acks if a["ack"].get("headers", {}).get("messageId") == frame_id), None
            )

    def _push(self, kind: str, topic: str, data: str, frame_id: str | None) -> str:
        socket, loop = self._socket, self._loop
        assert socket is not None and loop is not None, "no client is connected"
        self._seq += 1
        frame_id = frame_id or f"frame-{self._seq}-{secrets.token_hex(4)}"
        frame = {
            "specVersion": "1.0",
            "type": kind,
            "headers": {
                "appId": "app-1",
                "connectionId": f"conn-{self.connections}",
                "contentType": "application/json",
                "messageId": frame_id,
                "time": str(int(time.time() * 1000)),
                "topic": topic,
            },
            "data": data,
        }
        self.sent_at[frame_id] = time.monotonic()
        asyncio.run_coroutine_threadsafe(
            socket.send_text(json.dumps(frame, ensure_ascii=False)), loop
        ).result(5)
        return frame_id

    # -- endpoints -------------------------------------------------------------------------------------------
    async def _open(self, request: Request) -> Response:
        body = await request.json()
        with self._cond:
            self.open_requests.append(body)
        if self.fail_opens > 0:
            self.fail_opens -= 1
            return JSONResponse({"code": "ServiceUnavailable", "message": "网关繁忙"}, status_code=503)
        if body.get("clientId") != self.client_id or body.get("clientSecret") != self.client_secret:
            return JSONResponse(
                {"code": "InvalidAuthentication", "message": "clientId 或 clientSecret 无效"}, status_code=401
            )
        ticket = secrets.token_urlsafe(16)
        self._tickets.add(ticket)
        endpoint = self.url.replace("http://", "ws://", 1) + "/connect"
        return JSONResponse({"endpoint": endpoint, "ticket": ticket})

    async def _websocket(self, socket: WebSocket) -> None:
        ticket = socket.query_params.get("ticket", "")
        if ticket not in self._tickets:
            self.refused_tickets += 1
            await socket.close(code=1008)
            return
        self._tickets.discard(ticket)
        await socket.accept()
        with self._cond:
            self._socket, self._loop = socket, asyncio.get_running_loop()
            self.connections += 1
            self._cond.notify_all()
        try:
            while True:
                text = await socket.receive_text()
                with self._cond:
                    self.acks.append({"at": time.monotonic(), "ack": json.loads(text)})
                    self._cond.notify_all()
        except WebSocketDisconnect:
            pass
        finally:
            with self._cond:
                if self._socket is socket:
                    self._socket = None
                self._cond.notify_all()
