"""WeCom callback XML: parse the encrypted envelope and the decrypted message; build both (tests, replies).

Parsing goes through ``defusedxml``: DTDs, entity declarations and external references are refused,
so a hostile body cannot expand entities or make us fetch anything.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError  # noqa: S405 -- only for types and building

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from connectors.channels.base import InboundMessage, MalformedMessage

CHANNEL = "wecom"


def _parse(text: str | bytes) -> Element:
    try:
        root = fromstring(text)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise MalformedMessage("XML 无法解析") from exc
    if root.tag != "xml":
        raise MalformedMessage("XML 根元素应为 <xml>")
    return root


def _field(root: Element, name: str) -> str | None:
    node = root.find(name)
    return None if node is None else (node.text or "").strip()


def _required(root: Element, name: str) -> str:
    value = _field(root, name)
    if not value:
        raise MalformedMessage(f"缺少字段 {name}")
    return value


def parse_envelope(body: bytes) -> tuple[str, str | None]:
    """The POSTed envelope → (Encrypt, AgentID)."""
    root = _parse(body)
    return _required(root, "Encrypt"), _field(root, "AgentID")


def parse_message(xml_text: str) -> InboundMessage:
    """A decrypted message or event → InboundMessage (unknown types become ``unsupported``)."""
    root = _parse(xml_text)
    sender = _required(root, "FromUserName")
    msg_type = _required(root, "MsgType")
    created = _field(root, "CreateTime") or ""
    created_at = int(created) if created.isdigit() else None
    msg_id = _field(root, "MsgId")
    if msg_type == "event":
        event = _required(root, "Event")
        key = _field(root, "EventKey") or ""
        task = _field(root, "TaskId") or ""
        # Events carry no MsgId; WeCom's advice is FromUserName + CreateTime as the dedup key.
        return InboundMessage(
            CHANNEL,
            msg_id or f"event:{sender}:{created}:{event}:{key}:{task}",
            sender,
            "event",
            event=event,
            event_key=key or None,
            created_at=created_at,
            response_code=_field(root, "ResponseCode") or None,
        )
    if not msg_id:
        raise MalformedMessage("缺少字段 MsgId")
    if msg_type == "text":
        return InboundMessage(
            CHANNEL, msg_id, sender, "text", text=_field(root, "Content") or "", created_at=created_at
        )
    if msg_type == "voice":
        return InboundMessage(
            CHANNEL,
            msg_id,
            sender,
            "voice",
            media_id=_required(root, "MediaId"),
            media_format=(_field(root, "Format") or "amr").lower(),
            created_at=created_at,
        )
    return InboundMessage(CHANNEL, msg_id, sender, "unsupported", created_at=created_at)


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def build_xml(fields: dict[str, str | int]) -> str:
    """``<xml>`` with one child per field; strings as CDATA, integers as text."""
    inner = "".join(
        f"<{name}>{value if isinstance(value, int) else _cdata(value)}</{name}>"
        for name, value in fields.items()
    )
    return f"<xml>{inner}</xml>"


def build_envelope(*, to_user: str, agent_id: str, encrypt: str) -> str:
    return build_xml({"ToUserName": to_user, "AgentID": agent_id, "Encrypt": encrypt})
