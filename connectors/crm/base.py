"""The CRM port: read a customer snapshot; write tasks, visits, stages and notes.

Records crossing this boundary are plain frozen dataclasses shaped like the
import JSON of DESIGN §5.6, so every adapter maps to the same vocabulary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

STAGES = ("线索", "需求确认", "方案报价", "商务谈判", "赢单", "输单")
CITABLE_FIELDS = ("profile", "contacts", "opportunities", "visits", "purchases", "tasks")


@dataclass(frozen=True, slots=True)
class Contact:
    name: str
    role: str = ""
    is_decision_maker: bool = False


@dataclass(frozen=True, slots=True)
class StageEntry:
    stage: str
    entered: str


@dataclass(frozen=True, slots=True)
class Opportunity:
    id: str
    name: str
    stage: str
    amount: float | None = None
    currency: str = "CNY"
    created: str | None = None
    stage_entered: str | None = None
    expected_close: str | None = None
    competitors: tuple[str, ...] = ()
    stage_history: tuple[StageEntry, ...] = ()
    custom: dict[str, Any] = field(
        default_factory=dict
    )  # unknown import keys (quote_sent_date, se_assigned…)


@dataclass(frozen=True, slots=True)
class Visit:
    date: str
    type: str = ""
    user_id: str | None = None
    contacts: tuple[str, ...] = ()
    notes: str = ""
    memo_id: str | None = None


@dataclass(frozen=True, slots=True)
class Purchase:
    month: str  # YYYY-MM
    amount: float


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    title: str
    created: str | None = None
    due: str | None = None
    status: str = "open"
    completed: str | None = None


@dataclass(frozen=True, slots=True)
class CustomerSummary:
    id: str
    name: str
    tier: str | None
    industry: str | None
    region: str | None
    owner_user_id: str | None


@dataclass(frozen=True, slots=True)
class CustomerSnapshot:
    """Everything the CRM knows about one customer (DESIGN §5.6 shape)."""

    id: str
    name: str
    tier: str | None = None
    industry: str | None = None
    region: str | None = None
    owner_user_id: str | None = None
    notes: str = ""
    custom: dict[str, Any] = field(default_factory=dict)
    contacts: tuple[Contact, ...] = ()
    opportunities: tuple[Opportunity, ...] = ()
    visits: tuple[Visit, ...] = ()
    purchases: tuple[Purchase, ...] = ()
    tasks: tuple[Task, ...] = ()

    @property
    def profile(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "tier": self.tier,
            "industry": self.industry,
            "region": self.region,
            "owner_user_id": self.owner_user_id,
            "notes": self.notes,
            **self.custom,
        }

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        custom = data.pop("custom")
        data.update({k: v for k, v in custom.items() if k not in data})
        return data


# -- writes -------------------------------------------------------------------------------
# Drafts are what we ask a CRM to record; ``CRMRef`` is what it recorded. Every write carries an
# idempotency key: writing the same key twice (concurrently, or again after a timeout where the
# CRM did the first write) leaves ONE record in the CRM and returns the same ``CRMRef``.


@dataclass(frozen=True, slots=True)
class TaskDraft:
    customer_id: str
    title: str
    due: str | None = None  # YYYY-MM-DD
    owner_user_id: str | None = None
    notes: str = ""


@dataclass(frozen=True, slots=True)
class VisitDraft:
    customer_id: str
    date: str  # YYYY-MM-DD
    type: str = ""
    user_id: str | None = None
    contacts: tuple[str, ...] = ()
    notes: str = ""
    memo_id: str | None = None


@dataclass(frozen=True, slots=True)
class StageUpdate:
    customer_id: str
    opportunity_id: str
    stage: str  # one of STAGES
    entered: str | None = None  # YYYY-MM-DD; today when omitted


@dataclass(frozen=True, slots=True)
class NoteDraft:
    customer_id: str
    body: str
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class CRMRef:
    """A record a write produced (or touched), in the CRM's own ids."""

    crm: str
    kind: str  # task | visit | opportunity | note
    id: str

    def to_json(self) -> dict[str, str]:
        return {"crm": self.crm, "kind": self.kind, "id": self.id}


Draft = TaskDraft | VisitDraft | StageUpdate | NoteDraft

# op name (DESIGN §5.4 proposed_change.op) → (draft type, CRM method name)
WRITE_OPS: dict[str, tuple[type, str]] = {
    "create_task": (TaskDraft, "create_task"),
    "log_visit": (VisitDraft, "log_visit"),
    "update_stage": (StageUpdate, "update_stage"),
    "add_note": (NoteDraft, "add_note"),
}


def draft_for(op: str, fields: dict[str, Any]) -> Draft:
    """Build the draft of ``op`` from plain fields (e.g. a suggestion's proposed_change); ValueError if invalid."""
    if op not in WRITE_OPS:
        raise ValueError(f"不支持的 CRM 操作：{op}；可选：{', '.join(WRITE_OPS)}")
    cls = WRITE_OPS[op][0]
    names = set(cls.__dataclass_fields__)
    kwargs = {k: v for k, v in fields.items() if k in names}
    if "contacts" in kwargs:
        kwargs["contacts"] = tuple(kwargs["contacts"] or ())
    try:
        draft = cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"{op} 缺少必填字段：{exc}") from exc
    if isinstance(draft, StageUpdate) and draft.stage not in STAGES:
        raise ValueError(f"未知阶段：{draft.stage}；可选：{'、'.join(STAGES)}")
    return draft


def draft_fields(draft: Draft) -> dict[str, Any]:
    data = asdict(draft)
    if "contacts" in data:
        data["contacts"] = list(data["contacts"])
    return data


def write(crm: CRM, op: str, draft: Draft, *, idempotency_key: str) -> CRMRef:
    """Dispatch one write by op name."""
    return getattr(crm, WRITE_OPS[op][1])(draft, idempotency_key=idempotency_key)


class CRM(Protocol):
    """What the copilot needs from any CRM: customer snapshots to read, four idempotent writes.

    Writes raise ``connectors.crm.errors.CRMUnavailable`` (retry later) or ``CRMRejected`` (don't).
    """

    name: str

    def list_customers(
        self, *, owner_ids: set[str] | None = None, q: str | None = None
    ) -> list[CustomerSummary]:
        """Customers owned by ``owner_ids`` (None = all), optionally matching ``q`` by name/industry/region."""
        ...

    def get_customer(self, customer_id: str) -> CustomerSnapshot | None: ...

    def create_task(self, task: TaskDraft, *, idempotency_key: str) -> CRMRef: ...

    def log_visit(self, visit: VisitDraft, *, idempotency_key: str) -> CRMRef: ...

    def update_stage(self, change: StageUpdate, *, idempotency_key: str) -> CRMRef: ...

    def add_note(self, note: NoteDraft, *, idempotency_key: str) -> CRMRef: ...
