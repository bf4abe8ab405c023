"""The DingTalk enterprise robot (HTTP callback mode) as a channel.

    channel = DingTalkChannel(DingTalkClient(...), app_secret=...)
    message = channel.parse_callback(body, timestamp=headers["timestamp"], sign=headers["sign"])

The callback is authenticated by the ``timestamp`` and ``sign`` headers (HMAC-SHA256 keyed by the
app secret) and refused outside the replay window. Replies go through the message's
``sessionWebhook`` while it is valid and on the configured oapi host, else through the robot's
batch-send API.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from connectors.channels.base import InboundMessage, OutboundReply, split_utf8
from connectors.channels.crypto import DINGTALK_ROBOT_WINDOW_MS, verify_dingtalk_robot
from connectors.channels.dingtalk.client import MAX_TEXT_BYTES, DingTalkClient, origin
from connectors.channels.dingtalk.messages import parse_robot_message

WEBHOOK_MARGIN_MS = 10_000


class DingTalkChannel:
    name = "dingtalk"

    def __init__(
        self,
        client: DingTalkClient,
        *,
        app_secret: str,
        window_ms: float = DINGTALK_ROBOT_WINDOW_MS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self._secret = app_secret
        self._window_ms = window_ms
        self._clock = clock

    def parse_callback(self, body: bytes, *, timestamp: str, sign: str) -> InboundMessage:
        verify_dingtalk_robot(
            self._secret, timestamp, sign, now_ms=self._clock() * 1000, window_ms=self._window_ms
        )
        return parse_robot_message(body)

    def _session_usable(self, message: InboundMessage) -> bool:
        if not message.reply_url or origin(message.reply_url) != origin(self.client.oapi_base):
            return False
        expires = message.reply_url_expires_ms
        return expires is None or expires - WEBHOOK_MARGIN_MS > self._clock() * 1000

    def send(self, to: InboundMessage, reply: OutboundReply) -> None:
        for part in split_utf8(reply.text, MAX_TEXT_BYTES):
            if self._session_usable(to):
                self.client.send_by_session(
                    to.reply_url or "", part, markdown=reply.markdown, title=reply.title
                )
            else:
                self.client.batch_send(
                    [to.sender_id], part, markdown=reply.markdown, title=reply.title, robot_code=to.robot_code
                )

    def send_action_card(
        self, to: InboundMessage, title: str, text: str, buttons: list[tuple[str, str]]
    ) -> None:
        """A Markdown card with two buttons (label, URL) to the sender of ``to``."""
        if self._session_usable(to):
            self.client.send_action_card_by_session(to.reply_url or "", title, text, buttons)
        else:
            self.client.batch_send_action_card([to.sender_id], title, text, buttons, robot_code=to.robot_code)

    def fetch_media(self, message: InboundMessage) -> bytes:
        if not message.media_id:
            raise ValueError("该消息没有媒体文件")
        return self.client.download(message.media_id, robot_code=message.robot_code)
