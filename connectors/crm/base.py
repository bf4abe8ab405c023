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


class CRM(Protocol):
    """What the copilot needs from any CRM. Writes arrive with the issue on write-back."""

    name: str

    def list_customers(self, *, owner_ids: set[str] | None = None, q: str | None = None) -> list[CustomerSummary]:
        """Customers owned by ``owner_ids`` (None = all), optionally matching ``q`` by name/industry/region."""
        ...

    def get_customer(self, customer_id: str) -> CustomerSnapshot | None: ...
