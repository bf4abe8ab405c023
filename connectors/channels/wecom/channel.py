"""The WeCom self-built app as a channel: verify and decrypt callbacks, send replies, fetch voice.

    channel = WeComChannel(MessageCrypto(token, aes_key, corp_id), WeComClient(...))
    echo = channel.verify_url(msg_signature, timestamp, nonce, echostr)        # GET
    message = channel.parse_callback(body, msg_signature=..., timestamp=..., nonce=...)  # POST

Order of checks: signature first (an unauthenticated caller learns nothing else), then the replay
window on the timestamp, then decryption and parsing. Failures raise ``CryptoError`` or
``MalformedMessage``; nothing here logs message content.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from connectors.channels.base import InboundMessage, OutboundReply, split_utf8
from connectors.channels.crypto import MessageCrypto, check_timestamp
from connectors.channels.wecom.client import MAX_CONTENT_BYTES, WeComClient
from connectors.channels.wecom.messages import parse_envelope, parse_message

REPLAY_WINDOW_S = 300


class WeComChannel:
    name = "wecom"

    def __init__(
        self,
        crypto: MessageCrypto,
        client: WeComClient,
        *,
        replay_window_s: float = REPLAY_WINDOW_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.crypto = crypto
        self.client = client
        self._window = replay_window_s
        self._clock = clock

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """URL verification (GET): the decrypted ``echostr`` to answer as plain text."""
        echo = self.crypto.verify_url(msg_signature, timestamp, nonce, echostr)  # signature first
        check_timestamp(timestamp, now=self._clock(), window=self._window)
        return echo

    def parse_callback(
        self, body: bytes, *, msg_signature: str, timestamp: str, nonce: str
    ) -> InboundMessage:
        encrypt, _agent_id = parse_envelope(body)
        self.crypto.verify(msg_signature, timestamp, nonce, encrypt)
        check_timestamp(timestamp, now=self._clock(), window=self._window)
        return parse_message(self.crypto.open_verified(encrypt))

    def send(self, to: InboundMessage, reply: OutboundReply) -> None:
        for part in split_utf8(reply.text, MAX_CONTENT_BYTES):
            if reply.markdown:
                self.client.send_markdown(to.sender_id, part)
            else:
                self.client.send_text(to.sender_id, part)

    def send_card(self, to: InboundMessage, card: dict) -> None:
        self.client.send_template_card(to.sender_id, card)

    def update_card(self, event: InboundMessage, replace_name: str) -> None:
        """Show the outcome on the card the rep pressed (its buttons become one disabled label)."""
        if event.response_code:
            self.client.update_template_card(event.sender_id, event.response_code, replace_name)

    def fetch_media(self, message: InboundMessage) -> bytes:
        if not message.media_id:
            raise ValueError("该消息没有媒体文件")
        return self.client.get_media(message.media_id)
