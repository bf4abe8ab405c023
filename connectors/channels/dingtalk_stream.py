"""The DingTalk robot in Stream mode: messages arrive over an outbound websocket (no public IP needed).

    stream = DingTalkStream(client_id=app_key, client_secret=app_secret, on_message=accept,
                            api_base="https://api.dingtalk.com")
    stream.start_forever()        # blocks; reconnects with backoff; stream.stop() from any thread ends it

Built on the official ``dingtalk-stream`` SDK (its client, frames, acks and handlers); this adapter
replaces the SDK's connection loop, which has a hard-coded gateway URL, a fixed 10 s retry, no way
to stop, and retries bad credentials for ever:

1. ``POST {api_base}/v1.0/gateway/connections/open`` {clientId, clientSecret, subscriptions} →
   {endpoint, ticket}; a 4xx ends the run with ``ChannelRejected`` (wrong AppKey/AppSecret …).
2. websocket to ``endpoint?ticket=…``; every frame is acked with its ``messageId``. SYSTEM ``ping``
   is echoed, SYSTEM ``disconnect`` (the gateway is about to close) is acked and answered by
   reconnecting at once; a dropped socket or an unreachable gateway is retried with exponential
   backoff.
3. Robot messages (topic ``/v1.0/im/bot/messages/get``) carry the same JSON as the HTTP callback and
   go through the same parser. There is no signature: the connection itself is authenticated.
   ``on_message`` runs on a worker thread before the ack is sent, so it must only record and queue;
   if it raises, the frame is acked 500 and DingTalk delivers the message again.

Logs carry frame and message ids, never message text or credentials.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any
from urllib.parse import quote_plus, urlsplit

import httpx
import websockets
from dingtalk_stream import (
    AckMessage,
    CallbackHandler,
    CallbackMessage,
    ChatbotMessage,
    Credential,
    DingTalkStreamClient,
    EventMessage,
    SystemMessage,
)
from dingtalk_stream.frames import Headers

from connectors.channels.base import (
    ChannelRejected,
    ChannelUnavailable,
    InboundMessage,
    MalformedMessage,
    reaching,
)
from connectors.channels.dingtalk.messages import parse_robot_message
from connectors.http import make_client

CHANNEL = "dingtalk"
DEFAULT_API_BASE = "https://api.dingtalk.com"
OPEN_PATH = "/v1.0/gateway/connections/open"
ROBOT_TOPIC = ChatbotMessage.TOPIC
MAX_FRAME_BYTES = 1024 * 1024
DRAIN_S = 5.0  # on stop / drop: how long frames already received may take to be acked

logger = logging.getLogger(__name__)

OnMessage = Callable[[InboundMessage], Any]


def _ack(message_id: str | None, code: int, message: str) -> AckMessage:
    ack = AckMessage()
    ack.code = code
    ack.headers.message_id = message_id
    ack.headers.content_type = Headers.CONTENT_TYPE_APPLICATION_JSON
    ack.message = message
    ack.data = {"response": message}
    return ack


class RobotMessageHandler(CallbackHandler):
    """Parses robot messages with the HTTP callback's parser and hands them to ``on_message``."""

    def __init__(self, on_message: OnMessage, log: logging.Logger = logger) -> None:
        super().__init__()
        self._on_message = on_message
        self._log = log

    async def process(self, message: CallbackMessage) -> tuple[int, str]:
        frame_id = message.headers.message_id
        try:
            inbound = parse_robot_message(json.dumps(message.data))
        except MalformedMessage as exc:
            self._log.warning("钉钉 Stream 消息帧 %s 不是有效的机器人消息：%s", frame_id, exc)
            return AckMessage.STATUS_BAD_REQUEST, "bad message"
        try:
            await asyncio.to_thread(self._on_message, inbound)
        except Exception as exc:
            self._log.error(
                "钉钉消息 %s 未能受理（%s），将由钉钉重新投递",
                inbound.msg_id,
                type(exc).__name__,
                exc_info=True,
            )
            return AckMessage.STATUS_SYSTEM_EXCEPTION, "retry later"
        return AckMessage.STATUS_OK, "OK"

    async def raw_process(self, callback_message: CallbackMessage) -> AckMessage:
        code, message = await self.process(callback_message)
        return _ack(callback_message.headers.message_id, code, message)


class DingTalkStream(DingTalkStreamClient):
    """A stoppable, reconnecting Stream client for the robot topic (see the module docstring)."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        on_message: OnMessage,
        api_base: str = DEFAULT_API_BASE,
        timeout: float = 10.0,
        backoff: tuple[float, float] = (1.0, 60.0),
        on_connected: Callable[[], Any] | None = None,
        transport: httpx.BaseTransport | None = None,
        log: logging.Logger = logger,
    ) -> None:
        super().__init__(Credential(client_id, client_secret), logger=log)
        self.api_base = api_base.rstrip("/")
        self._timeout = timeout
        self._transport = transport
        self._initial_delay, self._max_delay = backoff
        self._delay = self._initial_delay
        self._on_connected = on_connected
        self.register_callback_handler(ROBOT_TOPIC, RobotMessageHandler(on_message, log))
        self.connections = 0  # websocket sessions opened so far
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._reconnect_now = False

    # -- control -----------------------------------------------------------------------------------
    def stop(self) -> None:
        """End ``start()`` / ``start_forever()``: frames already received are acked first. Thread-safe."""
        self._stopping.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with suppress(RuntimeError):  # the loop has already finished
                loop.call_soon_threadsafe(wake.set)

    def start_forever(self) -> None:
        """Run until ``stop()``; raises ``ChannelRejected`` when the gateway refuses the credentials."""
        asyncio.run(self.start())

    # -- connection-open API --------------------------------------------------------------------------
    def open_connection(self) -> dict[str, str]:
        """``{"endpoint", "ticket"}`` from the gateway; ``ChannelRejected`` / ``ChannelUnavailable``."""
        body = {
            "clientId": self.credential.client_id,
            "clientSecret": self.credential.client_secret,
            "subscriptions": [{"type": "CALLBACK", "topic": topic} for topic in self.callback_handler_map],
            "ua": "sales-copilot/dingtalk-stream-sdk-python",
        }
        self.logger.info("正在连接钉钉 Stream 网关 %s", self.api_base)
        with (
            reaching("钉钉 Stream 网关", channel=CHANNEL),
            make_client(self.api_base, timeout=self._timeout, transport=self._transport) as http,
        ):
            response = http.post(OPEN_PATH, json=body, headers={"Accept": "application/json"})
        try:
            data = response.json()
        except ValueError:
            data = None
        data = data if isinstance(data, dict) else {}
        status = response.status_code
        if status == 429 or status >= 500:
            raise ChannelUnavailable(f"钉钉 Stream 网关返回 HTTP {status}", channel=CHANNEL)
        if not response.is_success:
            detail = data.get("message") or f"HTTP {status}"
            raise ChannelRejected(
                f"钉钉拒绝建立 Stream 连接：{detail}", channel=CHANNEL, code=data.get("code") or status
            )
        endpoint, ticket = data.get("endpoint"), data.get("ticket")
        if not (isinstance(endpoint, str) and isinstance(ticket, str) and ticket):
            raise ChannelUnavailable("钉钉 Stream 网关未返回 endpoint 和 ticket", channel=CHANNEL)
        if urlsplit(endpoint).scheme not in ("ws", "wss"):
            raise ChannelRejected("钉钉 Stream 网关返回的 endpoint 不是 websocket 地址", channel=CHANNEL)
        return {"endpoint": endpoint, "ticket": ticket}

    # -- the connection loop ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect and serve until ``stop()``, reconnecting with exponential backoff."""
        self.pre_start()
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        while not self._stopping.is_set():
            self._reconnect_now = False
            try:
                connection = await asyncio.to_thread(self.open_connection)
                if self._stopping.is_set():
                    break
                await self._serve(connection)
                reason = "网关已关闭连接"
            except ChannelRejected:
                raise
            except ChannelUnavailable as exc:
                reason = exc.message
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
                reason = f"连接中断（{type(exc).__name__}）"
            except Exception as exc:  # a long-running bot outlives surprises; the log has the traceback
                self.logger.exception("钉钉 Stream 连接出错")
                reason = f"连接出错（{type(exc).__name__}）"
            if self._stopping.is_set():
                break
            if self._reconnect_now:
                self.logger.info("钉钉 Stream 网关要求重连，正在重新连接")
                continue
            self.logger.warning("钉钉 Stream：%s，%.1f 秒后重连", reason, self._delay)
            await self._sleep(self._delay)
            self._delay = min(self._delay * 2, self._max_delay)
        self.logger.info("钉钉 Stream 已停止")

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        with suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _serve(self, connection: dict[str, str]) -> None:
        uri = f"{connection['endpoint']}?ticket={quote_plus(connection['ticket'])}"
        async with websockets.connect(
            uri, open_timeout=self._timeout, max_size=MAX_FRAME_BYTES, proxy=None
        ) as websocket:
            self.websocket = websocket
            self.connections += 1
            self._delay = self._initial_delay
            self.logger.info("已连接钉钉 Stream 网关（第 %d 次连接）", self.connections)
            if self._on_connected is not None:
                self._on_connected()
            assert self._wake is not None
            receiver = asyncio.ensure_future(self._receive(websocket))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({receiver, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waker.cancel()
                if not receiver.done():
                    receiver.cancel()
                    with suppress(asyncio.CancelledError):
                        await receiver
                if self._pending:  # frames already received: let their acks go out
                    await asyncio.wait(set(self._pending), timeout=DRAIN_S)
            if not receiver.cancelled():
                receiver.result()  # a dropped connection raises here

    async def _receive(self, websocket: Any) -> None:
        async for raw in websocket:
            try:
                frame = json.loads(raw)
            except ValueError:
                self.logger.warning("钉钉 Stream 收到无法解析的帧，已忽略")
                continue
            if not isinstance(frame, dict):
                continue
            task = asyncio.ensure_future(self._route(websocket, frame))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _route(self, websocket: Any, frame: dict[str, Any]) -> None:
        headers = frame.get("headers") if isinstance(frame.get("headers"), dict) else {}
        frame_id = headers.get("messageId")
        try:
            ack, disconnect = await self._ack_for(frame, frame_id)
            if ack is not None:
                await websocket.send(json.dumps(ack.to_dict(), ensure_ascii=False))
            if disconnect:
                self._reconnect_now = True
                await websocket.close()
        except websockets.exceptions.ConnectionClosed:
            self.logger.info("连接已关闭，帧 %s 未能确认（钉钉会重新投递）", frame_id)
        except Exception:
            self.logger.exception("处理钉钉 Stream 帧 %s 时出错", frame_id)

    async def _ack_for(self, frame: dict[str, Any], frame_id: str | None) -> tuple[AckMessage | None, bool]:
        kind = frame.get("type")
        try:
            if kind == SystemMessage.TYPE:
                system = SystemMessage.from_dict(frame)
                ack = await self.system_handler.raw_process(system)
                return ack, system.headers.topic == SystemMessage.TOPIC_DISCONNECT
            if kind == CallbackMessage.TYPE:
                callback = CallbackMessage.from_dict(frame)
                handler = self.callback_handler_map.get(callback.headers.topic)
                if handler is None:
                    self.logger.warning("未订阅的回调主题 %s（帧 %s）", callback.headers.topic, frame_id)
                    return _ack(frame_id, AckMessage.STATUS_NOT_IMPLEMENT, "not implemented"), False
                return await handler.raw_process(callback), False
            if kind == EventMessage.TYPE:
                return await self.event_handler.raw_process(EventMessage.from_dict(frame)), False
        except (ValueError, TypeError):  # ``data`` is not JSON
            self.logger.warning("钉钉 Stream 帧 %s 的 data 无法解析", frame_id)
            return _ack(frame_id, AckMessage.STATUS_BAD_REQUEST, "bad data"), False
        self.logger.warning("未知类型的钉钉 Stream 帧 %s，已忽略", frame_id)
        return None, False
