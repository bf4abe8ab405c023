"""A fake of WeCom's side of an AI bot (智能机器人), on 127.0.0.1.

    with FakeWeComAIBot.running(token="t", aes_key=KEY) as wecom:
        wecom.callback_url = f"{app_url}/channels/wecom-aibot/callback"
        delivery = wecom.send_text("@销售副驾 客户嫌贵怎么回？", msg_id="m1")   # encrypted, signed POST
        delivery.stream                   # the decrypted stream reply: {"id", "finish", "content"}
        frames = wecom.poll(delivery.stream["id"])   # stream refresh callbacks until finish
        wecom.wait_for_responses(1)       # what our app POSTed to the message's response_url

It plays WeCom as the docs describe it (developer.work.weixin.qq.com/document/path/100719, 101031,
101033, 101138): callbacks are ``{"encrypt"}`` bodies signed with ``msg_signature``/``timestamp``/
``nonce``, the receive id is "", replies must be ``{"encrypt","msgsignature","timestamp","nonce"}``
whose signature it checks before decrypting. Its own server answers ``response_url`` posts
(``/cgi-bin/aibot/response?response_code=…``); each code works once, like the real one.
``fail_next_response(status)`` injects one failure there.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.channels.crypto import MessageCrypto
from connectors.channels.wecom_aibot import build_envelope
from tests.support.servers import serve_in_thread

__all__ = ["Delivery", "FakeWeComAIBot"]

RESPONSE_PATH = "/cgi-bin/aibot/response"


@dataclass
class Delivery:
    """One callback as WeCom saw it: the HTTP answer, how long it took, the decrypted stream reply."""

    status: int
    elapsed_s: float
    response: httpx.Response
    stream: dict[str, Any] | None


class FakeWeComAIBot:
    def __init__(self, *, token: str, aes_key: str, aibot_id: str = "aibot-fake-1") -> None:
        self.crypto = MessageCrypto(token, aes_key, "")
        self.aibot_id = aibot_id
        self.url = ""  # where response_url points
        self.callback_url = ""  # our app's callback URL, set by the test
        self.responses: list[dict[str, Any]] = []  # {"code", "body"} of each accepted response_url post
        self.refreshes = 0
        self._used: set[str] = set()
        self._faults: list[int] = []
        self._cond = threading.Condition()
        self._http = httpx.Client(timeout=10.0, trust_env=False)
        self.app = Starlette(routes=[Route(RESPONSE_PATH, self._response, methods=["POST"])])

    @classmethod
    @contextmanager
    def running(cls, **kwargs: Any) -> Iterator[FakeWeComAIBot]:
        fake = cls(**kwargs)
        try:
            with serve_in_thread(fake.app) as url:
                fake.url = url
                yield fake
        finally:
            fake._http.close()

    # -- building messages (plaintext JSON, as in doc 100719) ----------------------------------------
    def response_url(self) -> str:
        return f"{self.url}{RESPONSE_PATH}?response_code={secrets.token_hex(8)}"

    def _common(self, msgtype: str, *, msg_id: str | None, user: str, chat_type: str) -> dict[str, Any]:
        message: dict[str, Any] = {
            "msgid": msg_id or secrets.token_hex(12),
            "aibotid": self.aibot_id,
            "chattype": chat_type,
            "from": {"userid": user},
            "msgtype": msgtype,
        }
        if chat_type == "group":
            message["chatid"] = "wrkSFfCgAAgroup01"
        return message

    def text_message(
        self, content: str, *, msg_id: str | None = None, user: str = "lilei", chat_type: str = "group",
        response_url: bool = True,
    ) -> dict[str, Any]:  # fmt: skip
        message = self._common("text", msg_id=msg_id, user=user, chat_type=chat_type)
        message["text"] = {"content": content}
        if response_url:
            message["response_url"] = self.response_url()
        return message

    def voice_message(
        self, transcript: str, *, msg_id: str | None = None, user: str = "lilei"
    ) -> dict[str, Any]:
        message = self._common("voice", msg_id=msg_id, user=user, chat_type="single")
        message["voice"] = {"content": transcript}  # WeCom hands voice over already transcribed
        message["response_url"] = self.response_url()
        return message

    def image_message(self, *, msg_id: str | None = None, user: str = "lilei") -> dict[str, Any]:
        message = self._common("image", msg_id=msg_id, user=user, chat_type="single")
        message["image"] = {"url": f"{self.url}/image/1"}
        message["response_url"] = self.response_url()
        return message

    def refresh_message(self, stream_id: str, *, user: str = "lilei") -> dict[str, Any]:
        message = self._common("stream", msg_id=None, user=user, chat_type="group")
        message["stream"] = {"id": stream_id}
        return message

    # -- calling our app ------------------------------------------------------------------------------
    def post(
        self,
        message: dict[str, Any] | str,
        *,
        timestamp: int | None = None,
        signature: str | None = None,
        body: str | bytes | None = None,
        crypto: MessageCrypto | None = None,
    ) -> Delivery:
        """Encrypt, sign and POST one callback (``body`` replaces the envelope, for bad-input tests)."""
        plain = message if isinstance(message, str) else json.dumps(message, ensure_ascii=False)
        enc = (crypto or self.crypto).encrypt(plain, timestamp=timestamp)
        params = {"msg_signature": signature or enc.signature, "timestamp": enc.timestamp, "nonce": enc.nonce}
        content = build_envelope(enc.encrypt) if body is None else body
        started = time.perf_counter()
        response = self._http.post(
            self.callback_url,
            params=params,
            content=content.encode() if isinstance(content, str) else content,
            headers={"content-type": "application/json"},
        )
        elapsed = time.perf_counter() - started
        stream = self.open_reply(response) if response.status_code == 200 and response.content else None
        return Delivery(response.status_code, elapsed, response, stream)

    def open_reply(self, response: httpx.Response) -> dict[str, Any]:
        """Check the passive reply's signature, decrypt it, and return its ``stream`` object."""
        envelope = response.json()
        assert set(envelope) == {"encrypt", "msgsignature", "timestamp", "nonce"}, envelope
        plain = self.crypto.decrypt(
            envelope["encrypt"],
            signature=envelope["msgsignature"],
            timestamp=envelope["timestamp"],
            nonce=envelope["nonce"],
        )
        reply = json.loads(plain)
        assert reply["msgtype"] == "stream", reply
        stream = reply["stream"]
        assert isinstance(stream["id"], str) and isinstance(stream["finish"], bool), stream
        assert len(stream["content"].encode()) <= 20480
        return stream

    def send_text(self, content: str, **kwargs: Any) -> Delivery:
        return self.post(self.text_message(content, **kwargs))

    def refresh(self, stream_id: str, *, user: str = "lilei") -> Delivery:
        self.refreshes += 1
        return self.post(self.refresh_message(stream_id, user=user))

    def poll(self, stream_id: str, *, timeout: float = 10.0, interval: float = 0.05) -> list[dict[str, Any]]:
        """Refresh the stream until it is finished, as WeCom does; every stream frame seen, in order."""
        frames: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            delivery = self.refresh(stream_id)
            assert delivery.status == 200 and delivery.stream is not None, delivery.response.text
            assert delivery.stream["id"] == stream_id
            frames.append(delivery.stream)
            if delivery.stream["finish"]:
                return frames
            if time.monotonic() > deadline:
                raise AssertionError(f"stream {stream_id} not finished after {timeout} s: {frames[-1]}")
            time.sleep(interval)

    def verify_url(self, echo: str, *, signature: str | None = None, timestamp: int | None = None):
        enc = self.crypto.encrypt(echo, timestamp=timestamp)
        params = {
            "msg_signature": signature or enc.signature,
            "timestamp": enc.timestamp,
            "nonce": enc.nonce,
            "echostr": enc.encrypt,
        }
        return self._http.get(self.callback_url, params=params)

    # -- response_url -----------------------------------------------------------------------------------
    def fail_next_response(self, status: int = 500) -> None:
        self._faults.append(status)

    def wait_for_responses(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.responses) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {n} response_url posts, got {len(self.responses)}")
                self._cond.wait(left)
            return list(self.responses)

    async def _response(self, request: Request) -> Response:
        code = request.query_params.get("response_code", "")
        if self._faults:
            return JSONResponse({"errcode": -1, "errmsg": "injected fault"}, status_code=self._faults.pop(0))
        if not code or code in self._used:
            return JSONResponse({"errcode": 40001, "errmsg": "invalid response_code"})
        body = await request.json()
        content = (body.get("markdown") or {}).get("content", "")
        if body.get("msgtype") != "markdown" or len(content.encode()) > 20480:
            return JSONResponse({"errcode": 40008, "errmsg": "invalid message"})
        with self._cond:
            self._used.add(code)
            self.responses.append({"code": code, "body": body})
            self._cond.notify_all()
        return JSONResponse({"errcode": 0, "errmsg": "ok"})
