"""WeCom callback XML: parse the encrypted envelope and the decrypted message; build both (tests, replies).

WeCom's documents are flat: ``<xml>`` and one element per field. They are read with expat directly,
refusing any DTD — so no entity can be declared and nothing external referenced, the rule defusedxml
enforces — at under half of ElementTree's cost (a webhook burst parses two documents per message).
"""

from __future__ import annotations

from xml.parsers import expat

from connectors.channels.base import InboundMessage, MalformedMessage

CHANNEL = "wecom"


class _Refused(Exception):
    pass


def _refuse(*_args: object) -> None:
    raise _Refused


def _parse(text: str | bytes) -> dict[str, str]:
    """``<xml>``'s child elements → their text (nested elements' text is not collected)."""
    parser = expat.ParserCreate()
    parser.StartDoctypeDeclHandler = _refuse  # DTDs (and with them entity declarations) are refused
    parser.EntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse
    fields: dict[str, str] = {}
    roots: list[str] = []
    path: list[str] = []
    text_parts: list[str] = []

    def start(name: str, _attrs: dict[str, str]) -> None:
        if not path:
            roots.append(name)
        path.append(name)
        if len(path) == 2:
            text_parts.clear()

    def end(name: str) -> None:
        if len(path) == 2:
            fields.setdefault(name, "".join(text_parts))
        path.pop()

    def characters(data: str) -> None:
        if len(path) == 2:
            text_parts.append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = characters
    try:
        parser.Parse(text, True)
    except (expat.ExpatError, _Refused, ValueError) as exc:
        raise MalformedMessage("XML 无法解析") from exc
    if roots != ["xml"]:
        raise MalformedMessage("XML 根元素应为 <xml>")
    return fields


def _field(root: dict[str, str], name: str) -> str | None:
    value = root.get(name)
    return None if value is None else value.strip()


def _required(root: dict[str, str], name: str) -> str:
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
