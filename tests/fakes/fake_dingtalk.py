"""A stateful fake of the DingTalk APIs an enterprise robot uses, on 127.0.0.1.

Serves both bases (``api.dingtalk.com`` and ``oapi.dingtalk.com``) from one URL:

    POST /v1.0/oauth2/accessToken                  {"appKey","appSecret"} → {"accessToken","expireIn"}
    POST /v1.0/robot/oToMessages/batchSend         recorded in ``batch_sent``
    POST /v1.0/robot/messageFiles/download         {"downloadCode","robotCode"} → {"downloadUrl"}
    GET  /files/{code}                             the bytes of ``files[code]``
    POST /robot/sendBySession?session=…            recorded in ``session_sent``

    with FakeDingTalk.running(app_key="k", app_secret="s") as ding:
        ding.files["DL1"] = b"..."
        ...
        ding.wait_for_replies(1)
"""

from __future__ import annotations

import json
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

__all__ = ["FakeDingTalk"]


class FakeDingTalk:
    def __init__(
        self, *, app_key: str = "dingkey", app_secret: str = "dingsecret", robot_code: str = "dingrobot"
    ):
        self.app_key = app_key
        self.app_secret = app_secret
        self.robot_code = robot_code
        self.url = ""
        self.files: dict[str, bytes] = {}
        self.batch_sent: list[dict[str, Any]] = []
        self.session_sent: list[dict[str, Any]] = []
        self.token_requests = 0
        self._valid_tokens: set[str] = set()
        self._cond = threading.Condition()
        self.app = Starlette(
            routes=[
                Route("/v1.0/oauth2/accessToken", self._token, methods=["POST"]),
                Route("/v1.0/robot/oToMessages/batchSend", self._batch_send, methods=["POST"]),
                Route("/v1.0/robot/messageFiles/download", self._download, methods=["POST"]),
                Route("/files/{code}", self._file, methods=["GET"]),
                Route("/robot/sendBySession", self._session, methods=["POST"]),
            ]
        )

    @classmethod
    @contextmanager
    def running(cls, **kwargs: Any) -> Iterator[FakeDingTalk]:
        fake = cls(**kwargs)
        with serve_in_thread(fake.app) as url:
            fake.url = url
            yield fake

    # -- controls --------------------------------------------------------------------------------
    def session_webhook(self, session: str = "s1") -> str:
        return f"{self.url}/robot/sendBySession?session={session}"

    def expire_tokens(self) -> None:
        self._valid_tokens.clear()

    def replies(self) -> list[str]:
        """Every reply text, from both the session webhook and batch send, in arrival order."""
        with self._cond:
            return [text for _, text in sorted(self._texts)]

    @property
    def _texts(self) -> list[tuple[float, str]]:
        out = []
        for m in self.session_sent:
            kind = m["body"].get("msgtype")
            out.append((m["at"], m["body"][kind].get("content") or m["body"][kind].get("text", "")))
        for m in self.batch_sent:
            param = json.loads(m["body"]["msgParam"])
            out.append((m["at"], param.get("content") or param.get("text", "")))
        return out

    def wait_for_replies(self, n: int, timeout: float = 5.0) -> list[str]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.session_sent) + len(self.batch_sent) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {n} replies, got {self.session_sent + self.batch_sent}")
                self._cond.wait(left)
        return self.replies()

    # -- endpoints ------------------------------------------------------------------------------------
    def _authorised(self, request: Request) -> bool:
        return request.headers.get("x-acs-dingtalk-access-token", "") in self._valid_tokens

    @staticmethod
    def _unauthorised() -> JSONResponse:
        return JSONResponse(
            {"code": "InvalidAuthentication", "message": "不合法的access_token"}, status_code=401
        )

    def _record(self, into: list[dict[str, Any]], body: dict[str, Any], **extra: Any) -> None:
        with self._cond:
            into.append({"at": time.monotonic(), "body": body, **extra})
            self._cond.notify_all()

    async def _token(self, request: Request) -> Response:
        body = await request.json()
        if body.get("appKey") != self.app_key or body.get("appSecret") != self.app_secret:
            return JSONResponse(
                {"code": "invalidClientIdOrSecret", "message": "无效的appKey或appSecret"}, 400
            )
        self.token_requests += 1
        token = f"dtok-{self.token_requests}"
        self._valid_tokens.add(token)
        return JSONResponse({"accessToken": token, "expireIn": 7200})

    async def _batch_send(self, request: Request) -> Response:
        if not self._authorised(request):
            return self._unauthorised()
        body = await request.json()
        if body.get("robotCode") != self.robot_code:
            return JSONResponse({"code": "resource.not.found", "message": "robot 不存在"}, 400)
        self._record(self.batch_sent, body)
        return JSONResponse({"processQueryKey": f"q{len(self.batch_sent)}", "invalidStaffIdList": []})

    async def _download(self, request: Request) -> Response:
        if not self._authorised(request):
            return self._unauthorised()
        body = await request.json()
        code = body.get("downloadCode", "")
        if code not in self.files:
            return JSONResponse({"code": "invalidParameter", "message": "downloadCode 无效"}, 400)
        return JSONResponse({"downloadUrl": f"{self.url}/files/{code}"})

    async def _file(self, request: Request) -> Response:
        code = request.path_params["code"]
        if code not in self.files:
            return Response(status_code=404)
        return Response(self.files[code], media_type="application/octet-stream")

    async def _session(self, request: Request) -> Response:
        body = await request.json()
        self._record(self.session_sent, body, session=request.query_params.get("session"))
        return JSONResponse({"errcode": 0, "errmsg": "ok"})
