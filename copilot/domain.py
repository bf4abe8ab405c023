"""Shapes that cross the copilot's boundaries (DESIGN §5.4)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

ACTION_TYPES = (
    "schedule_visit",
    "send_material",
    "care_task",
    "escalate",
    "update_stage",
    "follow_up_quote",
    "involve_expert",
    "other",
)
CHANGE_OPS = ("create_task", "log_visit", "update_stage", "add_note")
ROLES = ("rep", "manager", "admin")


@dataclass(frozen=True, slots=True)
class Citation:
    kind: str  # kb | crm | memo
    ref: str  # chunk id | customer_id.field | memo_id
    locator: str  # "p3 ¶2" | "row 14" | "00:41–00:52"
    source: str  # kb: document path | crm: customer_id.field | memo: memo_id
    quote: str  # verbatim span of the source
    label: str  # 依据《…》2026-01-15 第3页第2段

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ProposedChange:
    op: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Suggestion:
    id: str
    customer_id: str
    action_type: str
    title: str
    rationale: str
    confidence: float
    citations: tuple[Citation, ...]
    proposed_change: ProposedChange | None
    status: str
    created_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "customer_id": self.customer_id,
            "action_type": self.action_type,
            "title": self.title,
            "rationale": self.rationale,
            "confidence": self.confidence,
            "citations": [c.to_json() for c in self.citations],
            "proposed_change": asdict(self.proposed_change) if self.proposed_change else None,
            "status": self.status,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    role: str  # rep | manager | admin
    team_id: str | None

    @property
    def is_manager(self) -> bool:
        return self.role in ("manager", "admin")


@dataclass(frozen=True, slots=True)
class ChatAnswer:
    answer: str
    citations: tuple[Citation, ...]
    suggestions: tuple[Suggestion, ...] = ()
    mode: str = "offline"  # offline | llm
    note: str | None = None  # e.g. why the LLM answer was replaced by the offline one
    dropped_citations: int = 0  # claims the validator rejected (counted in metrics, never shown)
    # the conversation (DESIGN §5.7)
    conversation_id: str | None = None
    intent: str | None = None
    customer_id: str | None = None
    proposed_change: dict[str, Any] | None = None
    clarify: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "conversation_id": self.conversation_id,
            "answer": self.answer,
            "citations": [c.to_json() for c in self.citations],
            "suggestions": [s.to_json() for s in self.suggestions],
            "intent": self.intent,
            "customer_id": self.customer_id,
            "proposed_change": self.proposed_change,
            "clarify": self.clarify,
            "mode": self.mode,
        }
        if self.note:
            data["note"] = self.note
        return data
