"""The draft CRM visit log of a memo and the rep's edits to it before confirming."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import date, datetime
from typing import Any

from copilot.domain import ProposedChange
from copilot.errors import AppError

# What the rep may change in the draft visit log before confirming; the rest (customer, rep, memo) is fixed.
EDITABLE_VISIT_FIELDS = ("date", "type", "contacts", "notes")
MAX_NOTES = 2000


def parse_when(value: str | None) -> datetime:
    if value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    return datetime.now().astimezone()


def confirm_key(memo_id: str) -> str:
    """The idempotency key of a memo's visit log in the write-back outbox and the CRM."""
    return f"{memo_id}:log_visit"


def clean_edits(edited: Mapping[str, Any]) -> dict[str, Any]:
    """The rep's edits to the draft, checked; AppError 422 (Chinese) for anything else."""
    unknown = sorted(set(edited) - set(EDITABLE_VISIT_FIELDS))
    if unknown:
        raise AppError(
            "validation_error",
            f"不能修改字段：{'、'.join(unknown)}；可修改：{'、'.join(EDITABLE_VISIT_FIELDS)}。",
        )
    out: dict[str, Any] = {}
    if "date" in edited:
        try:
            out["date"] = date.fromisoformat(str(edited["date"])).isoformat()
        except ValueError:
            raise AppError("validation_error", "拜访日期格式应为 YYYY-MM-DD。") from None
    if "type" in edited:
        out["type"] = str(edited["type"] or "").strip()[:50]
    if "contacts" in edited:
        contacts = edited["contacts"] or []
        if not isinstance(contacts, list) or not all(isinstance(c, str) for c in contacts):
            raise AppError("validation_error", "联系人应为姓名列表。")
        out["contacts"] = [c.strip() for c in contacts if c.strip()][:20]
    if "notes" in edited:
        notes = str(edited["notes"] or "")
        if len(notes) > MAX_NOTES:
            raise AppError("validation_error", f"拜访记录最多 {MAX_NOTES} 字。")
        out["notes"] = notes
    return out


def record_lines(record: Mapping[str, Any]) -> list[str]:
    """The visit record as short Chinese lines (需求/异议/竞品/下一步/阶段判断): the draft visit log's
    notes and the channels' memo summary both read this way."""
    parts = []
    if needs := [n.get("text") for n in record.get("needs") or [] if n.get("text")]:
        parts.append("需求：" + "；".join(needs))
    if objections := [o for o in record.get("objections") or [] if o.get("text")]:
        parts.append("异议：" + "；".join(f"[{o.get('type') or '其他'}] {o['text']}" for o in objections))
    if competitors := [c.get("name") for c in record.get("competitors") or [] if c.get("name")]:
        parts.append("竞品：" + "、".join(competitors))
    steps = [
        s.get("action", "") + (f"（{s['due']} 前）" if s.get("due") else "")
        for s in record.get("next_steps") or []
    ]
    if steps := [s for s in steps if s]:
        parts.append("下一步：" + "；".join(steps))
    if stage := (record.get("stage_hint") or {}).get("value"):
        parts.append(f"阶段判断：{stage}")
    return parts


def draft_visit_log(row: Any, record: Mapping[str, Any]) -> dict[str, Any]:
    """The CRM visit log the rep only has to confirm (ProposedChange ``log_visit``, DESIGN §5.4)."""
    when = parse_when(row.recorded_at).date() if row.recorded_at else date.today()
    parts = record_lines(record)
    contacts = [c["name"] for c in record.get("contacts") or [] if c.get("in_crm")]
    change = ProposedChange(
        op="log_visit",
        fields={
            "customer_id": row.customer_id,
            "date": when.isoformat(),
            "type": "拜访（语音纪要）",
            "user_id": row.user_id,
            "contacts": contacts,
            "notes": "\n".join(parts)[:2000],
            "memo_id": row.id,
        },
    )
    return asdict(change)
