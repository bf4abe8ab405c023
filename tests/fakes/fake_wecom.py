"""A stateful fake of the WeCom server API on 127.0.0.1: gettoken, message/send, media/get.

    with FakeWeCom.running(corp_id="wwcorp", secret="s3cret") as wecom:
        wecom.media["MEDIA1"] = b"#!AMR\\n..."
        client = WeComClient(base_url=wecom.url, corp_id="wwcorp", secret="s3cret", agent_id=1000002)
        ...
        sent = wecom.wait_for_sent(1)           # the message/send bodies, in order
        assert wecom.token_requests == 1

Tokens are ``tok-1``, ``tok-2`` …; ``expire_tokens()`` makes every issued token answer 42001, as
WeCom does when one expires. ``fail_next_send(errcode)`` injects one send failure. Content over
2048 bytes is refused with 45002 like the real server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.servers import serve_in_thread

__all__ = ["FakeWeCom"]


class FakeWeCom:
    def __init__(self, *, corp_id: str = "wwcorp", secret: str = "s3cret") -> None:
        self.corp_id = corp_id
        self.secret = secret
        self.url = ""
        self.media: dict[str, bytes] = {}
        self.sent: list[dict[str, Any]] = []
        self.token_requests = 0
        self.media_requests: list[str] = []
        self.card_updates: list[dict[str, Any]] = []
        self._valid_tokens: set[str] = set()
        self._send_faults: list[int] = []
        self._cond = threading.Condition()
        self.app = Starlette(
            routes=[
                Route("/cgi-bin/gettoken", self._gettoken, methods=["GET"]),
                Route("/cgi-bin/message/send", self._send, methods=["POST"]),
                Route("/cgi-bin/media/get", self._media, methods=["GET"]),
                Route("/cgi-bin/message/update_template_card", self._update_card, methods=["POST"]),
            ]
        )

    @classmethod
    @contextmanager
    def running(cls, **kwargs: Any) -> Iterator[FakeWeCom]:
        fake = cls(**kwargs)
        with serve_in_thread(fake.app) as url:
            fake.url = url
            yield fake

    # -- controls --------------------------------------------------------------------------------
    def expire_tokens(self) -> None:
        self._valid_tokens.clear()

    def fail_next_send(self, errcode: int = -1) -> None:
        self._send_faults.append(errcode)

    def wait_for_sent(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until at least ``n`` messages were sent; return them all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.sent) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {n} sent messages, got {len(self.sent)}: {self.sent}")
                self._cond.wait(left)
            return list(self.sent)

    def texts(self) -> list[str]:
        return [m[m["msgtype"]].get("content", "") for m in self.sent if m["msgtype"] in ("text", "markdown")]

    # -- endpoints ------------------------------------------------------------------------------------
    def _token_error(self, request: Request) -> JSONResponse | None:
        token = request.query_params.get("access_token", "")
        if not token:
            return JSONResponse({"errcode": 41001, "errmsg": "access_token missing"})
        if token not in self._valid_tokens:
            return JSONResponse({"errcode": 42001, "errmsg": "access_token expired"})
        return None

    async def _gettoken(self, request: Request) -> Response:
        q = request.query_params
        if q.get("corpid") != self.corp_id or q.get("corpsecret") != self.secret:
            return JSONResponse({"errcode": 40001, "errmsg": "invalid credential"})
        self.token_requests += 1
        token = f"tok-{self.token_requests}"
        self._valid_tokens.add(token)
        return JSONResponse({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200})

    async def _send(self, request: Request) -> Response:
        if (error := self._token_error(request)) is not None:
            return error
        body = await request.json()
        if self._send_faults:
            return JSONResponse({"errcode": self._send_faults.pop(0), "errmsg": "injected fault"})
        msgtype = body.get("msgtype")
        content = (body.get(msgtype) or {}).get("content") if msgtype in ("text", "markdown") else None
        if content is not None and len(content.encode()) > 2048:
            return JSONResponse({"errcode": 45002, "errmsg": "content size out of limit"})
        with self._cond:
            self.sent.append(body)
            self._cond.notify_all()
        return JSONResponse({"errcode": 0, "errmsg": "ok", "msgid": f"m{len(self.sent)}"})

    async def _update_card(self, request: Request) -> Response:
        if (error := self._token_error(request)) is not None:
            return error
        body = await request.json()
        code = body.get("response_code")
        if not code or any(u.get("response_code") == code for u in self.card_updates):
            return JSONResponse({"errcode": 40097, "errmsg": "invalid response_code"})  # one use each
        with self._cond:
            self.card_updates.append(body)
            self._cond.notify_all()
        return JSONResponse({"errcode": 0, "errmsg": "ok", "invaliduser": []})

    async def _media(self, request: Request) -> Response:
        if (error := self._token_error(request)) is not None:
            return error
        media_id = request.query_params.get("media_id", "")
        self.media_requests.append(media_id)
        if media_id not in self.media:
            return JSONResponse({"errcode": 40007, "errmsg": "invalid media_id"})
        return Response(
            self.media[media_id],
            media_type="audio/amr",
            headers={"Content-Disposition": f'attachment; filename="{media_id}.amr"'},
        )
