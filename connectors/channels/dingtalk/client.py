"""DingTalk APIs an enterprise robot needs: access token, 1:1 batch send, file download, session webhook.

    client = DingTalkClient(api_base="https://api.dingtalk.com", oapi_base="https://oapi.dingtalk.com",
                            app_key=..., app_secret=..., robot_code=...)
    client.batch_send(["manager123"], "你好")

The access token (``/v1.0/oauth2/accessToken``, 7200 s) is cached, refreshed shortly before it
expires, and at once when DingTalk answers 401, after which the call is retried once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from connectors.channels.base import (
    ChannelRejected,
    ChannelUnavailable,
    check_http_status,
    reaching,
    read_response_limited,
)
from connectors.http import make_client

CHANNEL = "dingtalk"
MAX_TEXT_BYTES = 5000  # conservative per-message size for robot text/markdown
MAX_MEDIA_BYTES = 20 * 1024 * 1024
TOKEN_MARGIN_S = 300
TOKEN_HEADER = "x-acs-dingtalk-access-token"  # noqa: S105 -- a header name


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


class DingTalkClient:
    def __init__(
        self,
        *,
        api_base: str,
        oapi_base: str,
        app_key: str,
        app_secret: str,
        robot_code: str | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        max_media_bytes: int = MAX_MEDIA_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = make_client(api_base, timeout=timeout, transport=transport)
        self.oapi_base = oapi_base.rstrip("/")
        self._app_key = app_key
        self._app_secret = app_secret
        self.robot_code = robot_code
        self.max_media_bytes = max_media_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._token_expires = 0.0

    def close(self) -> None:
        self._http.close()

    # -- plumbing ----------------------------------------------------------------------------------
    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        with reaching("钉钉接口", channel=CHANNEL):
            return self._http.request(method, url, **kwargs)

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            if response.status_code == 429 or response.status_code >= 500:
                raise ChannelUnavailable(f"钉钉接口返回 HTTP {response.status_code}", channel=CHANNEL)
            raise ChannelUnavailable("钉钉接口返回了无法解析的内容", channel=CHANNEL)
        return data

    @classmethod
    def _checked(cls, response: httpx.Response) -> dict[str, Any]:
        data = cls._json(response)
        status = response.status_code
        code = data.get("code") or data.get("errcode")
        if status == 429 or status >= 500:
            raise ChannelUnavailable(f"钉钉接口返回 HTTP {status}", channel=CHANNEL, code=code)
        if not response.is_success or code not in (None, 0, "0"):
            message = data.get("message") or data.get("errmsg") or f"HTTP {status}"
            raise ChannelRejected(f"钉钉接口错误：{message}", channel=CHANNEL, code=code)
        return data

    # -- access token --------------------------------------------------------------------------------
    def access_token(self, *, refresh: bool = False) -> str:
        with self._lock:
            if refresh or self._token is None or self._clock() >= self._token_expires:
                data = self._checked(
                    self._request(
                        "POST",
                        "/v1.0/oauth2/accessToken",
                        json={"appKey": self._app_key, "appSecret": self._app_secret},
                    )
                )
                token = data.get("accessToken")
                if not isinstance(token, str) or not token:
                    raise ChannelRejected("钉钉未返回 accessToken", channel=CHANNEL)
                expires_in = float(data.get("expireIn") or 7200)
                self._token = token
                self._token_expires = self._clock() + max(expires_in - TOKEN_MARGIN_S, expires_in / 2)
            return self._token

    def _call(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        for attempt in (1, 2):
            token = self.access_token()
            response = self._request("POST", path, json=payload, headers={TOKEN_HEADER: token})
            if response.status_code == 401 and attempt == 1:
                with self._lock:
                    if self._token == token:
                        self._token = None
                continue
            return self._checked(response)
        raise AssertionError("unreachable")  # pragma: no cover

    def _robot_code(self, robot_code: str | None) -> str:
        code = self.robot_code or robot_code  # the configured one wins over the message body
        if not code:
            raise ChannelRejected("未配置机器人 robotCode（COPILOT_DINGTALK_ROBOT_CODE）", channel=CHANNEL)
        return code

    # -- sending ---------------------------------------------------------------------------------------
    def batch_send(
        self,
        user_ids: list[str],
        text: str,
        *,
        markdown: bool = False,
        title: str = "",
        robot_code: str | None = None,
    ) -> dict[str, Any]:
        """Robot 1:1 messages (``/v1.0/robot/oToMessages/batchSend``)."""
        if markdown:
            key, param = "sampleMarkdown", {"title": title or "消息", "text": text}
        else:
            key, param = "sampleText", {"content": text}
        payload = {
            "robotCode": self._robot_code(robot_code),
            "userIds": user_ids,
            "msgKey": key,
            "msgParam": json.dumps(param, ensure_ascii=False),
        }
        return self._call("/v1.0/robot/oToMessages/batchSend", payload)

    def batch_send_action_card(
        self, user_ids: list[str], title: str, text: str, buttons: list[tuple[str, str]], *,
        robot_code: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """A card with two side-by-side buttons (msgKey ``sampleActionCard6``) as robot 1:1 messages."""
        (label1, url1), (label2, url2) = buttons
        param = {"title": title, "text": text, "buttonTitle1": label1, "buttonUrl1": url1,
                 "buttonTitle2": label2, "buttonUrl2": url2}  # fmt: skip
        payload = {
            "robotCode": self._robot_code(robot_code),
            "userIds": user_ids,
            "msgKey": "sampleActionCard6",
            "msgParam": json.dumps(param, ensure_ascii=False),
        }
        return self._call("/v1.0/robot/oToMessages/batchSend", payload)

    def send_action_card_by_session(
        self, webhook: str, title: str, text: str, buttons: list[tuple[str, str]]
    ) -> dict[str, Any]:
        """An ``actionCard`` with side-by-side buttons through the message's ``sessionWebhook``."""
        if origin(webhook) != origin(self.oapi_base):
            raise ChannelRejected("sessionWebhook 不属于配置的钉钉接口地址", channel=CHANNEL)
        card = {"title": title, "text": text, "btnOrientation": "1",
                "btns": [{"title": label, "actionURL": url} for label, url in buttons]}  # fmt: skip
        return self._checked(
            self._request("POST", webhook, json={"msgtype": "actionCard", "actionCard": card})
        )

    def send_by_session(
        self, webhook: str, text: str, *, markdown: bool = False, title: str = ""
    ) -> dict[str, Any]:
        """Reply through the message's ``sessionWebhook``; only URLs on the configured oapi host are used."""
        if origin(webhook) != origin(self.oapi_base):
            raise ChannelRejected("sessionWebhook 不属于配置的钉钉接口地址", channel=CHANNEL)
        if markdown:
            payload: dict[str, Any] = {
                "msgtype": "markdown",
                "markdown": {"title": title or "消息", "text": text},
            }
        else:
            payload = {"msgtype": "text", "text": {"content": text}}
        return self._checked(self._request("POST", webhook, json=payload))

    # -- files -------------------------------------------------------------------------------------------
    def download(self, download_code: str, *, robot_code: str | None = None) -> bytes:
        """A file the user sent the robot (voice …): resolve ``downloadCode``, then fetch, size-limited."""
        data = self._call(
            "/v1.0/robot/messageFiles/download",
            {"downloadCode": download_code, "robotCode": self._robot_code(robot_code)},
        )
        url = data.get("downloadUrl")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            raise ChannelRejected("钉钉未返回有效的 downloadUrl", channel=CHANNEL)
        try:
            with self._http.stream("GET", url) as response:
                check_http_status(response.status_code, channel=CHANNEL, what="下载文件")
                return read_response_limited(response, limit=self.max_media_bytes, channel=CHANNEL)
        except httpx.TimeoutException as exc:
            raise ChannelUnavailable("下载文件超时", channel=CHANNEL) from exc
        except httpx.TransportError as exc:
            raise ChannelUnavailable(f"无法下载文件（{type(exc).__name__}）", channel=CHANNEL) from exc
