"""The fields of a CRM change (DESIGN §5.4 ``proposed_change``), validated per op before anything is
queued for the CRM: types, ``YYYY-MM-DD`` dates in a sane range, lengths, the allowed stages.

    fields = validate_change("create_task", {"customer_id": "c_1", "title": "回访", "due": "2026-12-01"})
    check_people("create_task", fields, allowed={"u_rep_li"}, exists=users.get)

``validate_change`` returns the normalised fields (whitespace trimmed, defaults filled) or raises
``InvalidChange`` (a ValueError: callers answer 422 ``validation_error``) with a Chinese message
naming each bad field. The outbox validates again before each delivery, so a row that could never be
written fails at once instead of being retried.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from connectors.crm.base import STAGES

MIN_YEAR, MAX_YEAR = 2000, 2099
PERSON_FIELDS = {"create_task": "owner_user_id", "log_visit": "user_id", "add_note": "user_id"}


class InvalidChange(ValueError):
    """A change no CRM should receive; the message (Chinese) names the fields to fix."""


def _day(value: str) -> str:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ValueError("日期格式应为 YYYY-MM-DD") from None
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise ValueError(f"日期应在 {MIN_YEAR}–{MAX_YEAR} 年之间")
    return day.isoformat()


Day = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^\d{4}-\d{2}-\d{2}$"), AfterValidator(_day)
]
Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Notes = Annotated[str, StringConstraints(max_length=2000)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class _Fields(BaseModel):
    # strict: no silent coercion (a title of {"x": [1, 2]} or 42 is refused, not stringified);
    # unknown keys are dropped, as the CRM port always did.
    model_config = ConfigDict(strict=True, extra="ignore")

    customer_id: Id


class TaskFields(_Fields):
    title: Title
    due: Day | None = None
    owner_user_id: Id | None = None
    notes: Notes = ""


class VisitFields(_Fields):
    date: Day
    type: Annotated[str, StringConstraints(strip_whitespace=True, max_length=50)] = ""
    user_id: Id | None = None
    contacts: Annotated[list[Name], Field(max_length=20)] = []
    notes: Notes = ""
    memo_id: Id | None = None


class StageFields(_Fields):
    opportunity_id: Id
    stage: Literal[STAGES]  # type: ignore[valid-type]
    entered: Day | None = None


class NoteFields(_Fields):
    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)]
    user_id: Id | None = None


MODELS: dict[str, type[_Fields]] = {
    "create_task": TaskFields,
    "log_visit": VisitFields,
    "update_stage": StageFields,
    "add_note": NoteFields,
}

_MESSAGES = {
    "missing": "缺少必填字段",
    "string_type": "应为文本",
    "list_type": "应为文本列表",
    "string_too_short": "不能为空",
    "string_pattern_mismatch": "日期格式应为 YYYY-MM-DD",
    "none_required": "不能为空",
}


def _reason(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "string_too_long":
        return f"过长（最多 {ctx.get('max_length')} 字）"
    if kind == "too_long":
        return f"过多（最多 {ctx.get('max_length')} 项）"
    if kind == "literal_error":
        return f"取值不合法，可选：{'、'.join(STAGES)}"
    if kind == "value_error":
        return str(ctx.get("error") or error.get("msg", ""))
    return _MESSAGES.get(kind, "不合法")


def _describe(error: ValidationError) -> str:
    parts = []
    for e in error.errors()[:5]:
        where = ".".join(str(p) for p in e.get("loc", ()) if not str(p).startswith(("function-", "str")))
        parts.append(f"{where or '字段'} {_reason(e)}")
    return "CRM 字段不合法：" + "；".join(dict.fromkeys(parts))


def validate_change(op: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The normalised fields of ``op``; InvalidChange (Chinese) when they are not writable."""
    model = MODELS.get(op)
    if model is None:
        raise InvalidChange(f"不支持的 CRM 操作：{op}；可选：{', '.join(MODELS)}")
    if not isinstance(fields, Mapping):
        raise InvalidChange("CRM 字段应为对象。")
    try:
        return model.model_validate(dict(fields)).model_dump()
    except ValidationError as exc:
        raise InvalidChange(_describe(exc)) from None


def check_people(
    op: str,
    fields: Mapping[str, Any],
    *,
    customer_owner: str | None,
    allowed: set[str] | None,
    exists: Callable[[str], Any],
) -> None:
    """The person a change names (a task's owner, a visit's or note's author) must be the customer's
    owner or someone the caller may see (``allowed``; None = anyone, for admins), and must exist."""
    name = PERSON_FIELDS.get(op)
    person = fields.get(name) if name else None
    if not person:
        return
    if person != customer_owner and allowed is not None and person not in allowed:
        raise InvalidChange(f"{name} 只能是客户负责人或您权限范围内的同事：{person} 不在其中。")
    if exists(person) is None:
        raise InvalidChange(f"{name} 指定的用户 {person} 不存在。")
