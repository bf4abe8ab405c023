"""WeCom server API for a self-built app: gettoken (cached, refreshed), message/send, media/get.

    client = WeComClient(base_url="https://qyapi.weixin.qq.com", corp_id=..., secret=..., agent_id=...)
    client.send_text("lilei", "你好")

Access tokens live 7200 s; one is shared by all threads and refreshed shortly before it expires,
or at once when WeCom says it is invalid (40001, 40014, 42001), after which the call is retried once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from connectors.channels.base import (
    ChannelRejected,
    ChannelUnavailable,
    check_http_status,
    reaching,
    read_response_limited,
)
from connectors.http import make_client

CHANNEL = "wecom"
MAX_CONTENT_BYTES = 2048  # message/send text and markdown content limit
MAX_MEDIA_BYTES = 20 * 1024 * 1024
TOKEN_MARGIN_S = 300
TOKEN_ERRORS = {40001, 40014, 42001}
TRANSIENT_ERRORS = {-1, 45009, 45033}  # system busy, API rate limit, too many concurrent calls


class WeComClient:
    def __init__(
        self,
        *,
        base_url: str,
        corp_id: str,
        secret: str,
        agent_id: str | int,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        max_media_bytes: int = MAX_MEDIA_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = make_client(base_url, timeout=timeout, transport=transport)
        self._corp_id = corp_id
        self._secret = secret
        self.agent_id = int(agent_id)
        self.max_media_bytes = max_media_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._token_expires = 0.0

    def close(self) -> None:
        self._http.close()

    # -- access token -------------------------------------------------------------------------
    def access_token(self, *, refresh: bool = False) -> str:
        with self._lock:
            if refresh or self._token is None or self._clock() >= self._token_expires:
                data = self._json(
                    self._request(
                        "GET",
                        "/cgi-bin/gettoken",
                        params={"corpid": self._corp_id, "corpsecret": self._secret},
                    )
                )
                self._check(data)
                token = data.get("access_token")
                if not isinstance(token, str) or not token:
                    raise ChannelRejected("gettoken 未返回 access_token", channel=CHANNEL)
                expires_in = float(data.get("expires_in") or 7200)
                self._token = token
                self._token_expires = self._clock() + max(expires_in - TOKEN_MARGIN_S, expires_in / 2)
            return self._token

    def _invalidate(self, token: str) -> None:
        with self._lock:
            if self._token == token:
                self._token = None

    # -- calls ---------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with reaching("企业微信接口", channel=CHANNEL):
            response = self._http.request(method, path, **kwargs)
        if response.status_code == 429 or response.status_code >= 500:
            raise ChannelUnavailable(f"企业微信接口返回 HTTP {response.status_code}", channel=CHANNEL)
        if not response.is_success:
            raise ChannelRejected(f"企业微信接口返回 HTTP {response.status_code}", channel=CHANNEL)
        return response

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError as exc:
            raise ChannelUnavailable("企业微信接口返回了无法解析的内容", channel=CHANNEL) from exc
        if not isinstance(data, dict):
            raise ChannelUnavailable("企业微信接口返回了无法解析的内容", channel=CHANNEL)
        return data

    @staticmethod
    def _check(data: dict[str, Any]) -> None:
        code = data.get("errcode", 0)
        if code in (0, None):
            return
        message = f"企业微信接口错误：{data.get('errmsg') or code}"
        if code in TRANSIENT_ERRORS:
            raise ChannelUnavailable(message, channel=CHANNEL, code=code)
        raise ChannelRejected(message, channel=CHANNEL, code=code)

    def _call(self, method: str, path: str, *, json: dict[str, Any] | None = None) -> dict[str, Any]:
        for attempt in (1, 2):
            token = self.access_token()
            data = self._json(self._request(method, path, params={"access_token": token}, json=json))
            if data.get("errcode") in TOKEN_ERRORS and attempt == 1:
                self._invalidate(token)
                continue
            self._check(data)
            return data
        raise AssertionError("unreachable")  # pragma: no cover

    # -- message/send ----------------------------------------------------------------------------
    def send(self, to_user: str, msgtype: str, body: dict[str, Any]) -> dict[str, Any]:
        payload = {"touser": to_user, "msgtype": msgtype, "agentid": self.agent_id, msgtype: body}
        return self._call("POST", "/cgi-bin/message/send", json=payload)

    def send_text(self, to_user: str, content: str) -> dict[str, Any]:
        _check_size(content)
        return self.send(to_user, "text", {"content": content})

    def send_markdown(self, to_user: str, content: str) -> dict[str, Any]:
        _check_size(content)
        return self.send(to_user, "markdown", {"content": content})

    def send_template_card(self, to_user: str, card: dict[str, Any]) -> dict[str, Any]:
        return self.send(to_user, "template_card", card)

    def update_template_card(self, to_user: str, response_code: str, replace_name: str) -> dict[str, Any]:
        """Turn the pressed card's buttons into one disabled button reading ``replace_name``
        (``response_code`` comes with the card event and can be used once, within 72 hours)."""
        payload = {"userids": [to_user], "agentid": self.agent_id, "response_code": response_code,
                   "button": {"replace_name": replace_name}}  # fmt: skip
        return self._call("POST", "/cgi-bin/message/update_template_card", json=payload)

    # -- media/get --------------------------------------------------------------------------------
    def get_media(self, media_id: str) -> bytes:
        """Download a temporary media file (voice AMR …); at most ``max_media_bytes``."""
        for attempt in (1, 2):
            token = self.access_token()
            params = {"access_token": token, "media_id": media_id}
            try:
                with self._http.stream("GET", "/cgi-bin/media/get", params=params) as response:
                    check_http_status(response.status_code, channel=CHANNEL, what="企业微信接口")
                    if response.headers.get("content-type", "").startswith(
                        ("application/json", "text/plain")
                    ):
                        response.read()
                        data = self._json(response)
                        if data.get("errcode") in TOKEN_ERRORS and attempt == 1:
                            self._invalidate(token)
                            continue
                        self._check(data)
                        raise ChannelRejected("企业微信未返回媒体文件", channel=CHANNEL)
                    return read_response_limited(response, limit=self.max_media_bytes, channel=CHANNEL)
            except httpx.TimeoutException as exc:
                raise ChannelUnavailable("企业微信接口请求超时", channel=CHANNEL) from exc
            except httpx.TransportError as exc:
                raise ChannelUnavailable(
                    f"无法连接企业微信接口（{type(exc).__name__}）", channel=CHANNEL
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover


def _check_size(content: str) -> None:
    if len(content.encode()) > MAX_CONTENT_BYTES:
        raise ValueError(f"消息内容超过 {MAX_CONTENT_BYTES} 字节，请先用 split_utf8 拆分")
