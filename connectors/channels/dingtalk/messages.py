"""DingTalk enterprise robot callback body (HTTP mode; Stream mode delivers the same JSON).

    {"msgId": "msg…", "msgtype": "text", "text": {"content": " 你好"}, "senderStaffId": "manager123",
     "senderId": "$:LWCP_v1:$…", "conversationId": "cid…", "conversationType": "1", "robotCode": "ding…",
     "sessionWebhook": "https://oapi.dingtalk.com/robot/sendBySession?session=…",
     "sessionWebhookExpiredTime": 1690000000000, "createAt": 1690000000000}

Audio: ``"msgtype": "audio", "content": {"downloadCode": "…", "recognition": "钉钉的转写", "duration": 4000}``.
"""

from __future__ import annotations

import json
from typing import Any

from connectors.channels.base import InboundMessage, MalformedMessage

CHANNEL = "dingtalk"


def _str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def parse_robot_message(body: bytes | str) -> InboundMessage:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessage("JSON 无法解析") from exc
    if not isinstance(data, dict):
        raise MalformedMessage("消息体应为 JSON 对象")
    msg_id = _str(data, "msgId")
    msg_type = _str(data, "msgtype")
    sender = _str(data, "senderStaffId") or _str(data, "senderId")
    if not (msg_id and msg_type and sender):
        raise MalformedMessage("缺少字段 msgId、msgtype 或 senderStaffId")
    created_ms = _int(data.get("createAt"))
    common: dict[str, Any] = {
        "conversation_id": _str(data, "conversationId"),
        "reply_url": _str(data, "sessionWebhook"),
        "reply_url_expires_ms": _int(data.get("sessionWebhookExpiredTime")),
        "robot_code": _str(data, "robotCode"),
        "created_at": created_ms // 1000 if created_ms else None,
    }
    if msg_type == "text":
        text = data.get("text")
        content = text.get("content") if isinstance(text, dict) else None
        if not isinstance(content, str):
            raise MalformedMessage("文本消息缺少 text.content")
        return InboundMessage(CHANNEL, msg_id, sender, "text", text=content.strip(), **common)
    if msg_type == "audio":
        content = data.get("content")
        if not isinstance(content, dict) or not _str(content, "downloadCode"):
            raise MalformedMessage("语音消息缺少 content.downloadCode")
        return InboundMessage(
            CHANNEL,
            msg_id,
            sender,
            "voice",
            text=_str(content, "recognition") or "",
            media_id=_str(content, "downloadCode"),
            media_format="amr",
            **common,
        )
    return InboundMessage(CHANNEL, msg_id, sender, "unsupported", **common)
