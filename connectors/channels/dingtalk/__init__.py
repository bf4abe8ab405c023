"""DingTalk (钉钉) enterprise robot: callback parsing, API client, and the channel adapter."""

from connectors.channels.dingtalk.channel import DingTalkChannel
from connectors.channels.dingtalk.client import MAX_TEXT_BYTES, DingTalkClient
from connectors.channels.dingtalk.messages import parse_robot_message

__all__ = ["MAX_TEXT_BYTES", "DingTalkChannel", "DingTalkClient", "parse_robot_message"]
