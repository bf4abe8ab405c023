"""WeCom (企业微信) self-built app: callback parsing, server API client, and the channel adapter."""

from connectors.channels.wecom.channel import REPLAY_WINDOW_S, WeComChannel
from connectors.channels.wecom.client import MAX_CONTENT_BYTES, WeComClient
from connectors.channels.wecom.messages import build_envelope, build_xml, parse_envelope, parse_message

__all__ = [
    "MAX_CONTENT_BYTES",
    "REPLAY_WINDOW_S",
    "WeComChannel",
    "WeComClient",
    "build_envelope",
    "build_xml",
    "parse_envelope",
    "parse_message",
]
