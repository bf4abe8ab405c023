"""The suggestion event log, folded into one record per suggestion.

Events (``suggestion_events``): proposed → shown (once, with the channel) → accepted / edited / dismissed
→ applied. ``ignored`` is never written: a shown suggestion with no action at all is ignored once
7 days have passed since it was shown (``IGNORE_AFTER``); before that it is ``pending``.

Counting rules (the unit is a suggestion, never an event, so re-showing cannot inflate numbers):

- a suggestion's *decision* is its latest accepted / edited / dismissed event;
- applied without any feedback event counts as accepted (applying is acting on it);
- *time to action* runs from ``shown`` to the first accepted / edited / dismissed / applied event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from copilot.storage import tables as t

IGNORE_AFTER = timedelta(days=7)
DECISIONS = ("accepted", "edited", "dismissed")
ACTIONS = (*DECISIONS, "applied")
# What a rep may pick when dismissing (the feedback comment); anything else counts as 其他.
DISMISS_REASONS = ("不相关", "时机不对", "已在跟进", "依据有误", "客户不适用", "其他")
OUTCOMES = ("accepted", "edited", "dismissed", "ignored", "pending", "not_shown")


def as_utc(value: Any) -> datetime | None:
    """Timestamps come back naive from SQLite: they were written in UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Event:
    event: str
    created_at: datetime
    channel: str | None = None
    detail: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class SuggestionRecord:
    """One suggestion with its events folded: what the metrics count."""

    id: str
    user_id: str
    team_id: str | None
    customer_id: str
    action_type: str
    title: str = ""
    citations: tuple[Mapping[str, Any], ...] = ()
    created_at: datetime | None = None
    shown_at: datetime | None = None
    channel: str | None = None
    decision: str | None = None  # accepted | edited | dismissed
    decided_at: datetime | None = None
    first_action_at: datetime | None = None
    applied_at: datetime | None = None
    dismiss_reason: str | None = None
    comment: str | None = None
    edited_fields: tuple[str, ...] = field(default=())

    @property
    def documents(self) -> tuple[str, ...]:
        """KB documents this suggestion cites (each once)."""
        seen: dict[str, None] = {}
        for c in self.citations:
            if c.get("kind") == "kb" and c.get("source"):
                seen.setdefault(str(c["source"]), None)
        return tuple(seen)

    def outcome(self, now: datetime) -> str:
        if self.shown_at is None:
            return "not_shown"
        if self.decision is not None:
            return self.decision
        if now - self.shown_at >= IGNORE_AFTER:
            return "ignored"
        return "pending"

    @property
    def adopted(self) -> bool:
        return self.decision in ("accepted", "edited")

    @property
    def hours_to_action(self) -> float | None:
        if self.shown_at is None or self.first_action_at is None:
            return None
        return max(0.0, (self.first_action_at - self.shown_at).total_seconds() / 3600)


def dismiss_reason(comment: str | None) -> str:
    """Map a dismissal's comment to the short list (free text → 其他)."""
    text = (comment or "").strip()
    for reason in DISMISS_REASONS:
        if text == reason or text.startswith(reason):
            return reason
    return "其他" if text else "未填写"


def fold(base: Mapping[str, Any], events: Iterable[Event]) -> SuggestionRecord:
    """One suggestion row plus its events (any order) → a ``SuggestionRecord``."""
    shown_at = channel = decision = decided_at = first_action = applied_at = comment = None
    edited: tuple[str, ...] = ()
    for ev in sorted(events, key=lambda e: e.created_at):
        if ev.event == "shown" and shown_at is None:
            shown_at, channel = ev.created_at, ev.channel
        elif ev.event in ACTIONS:
            first_action = first_action or ev.created_at
            if ev.event == "applied":
                applied_at = applied_at or ev.created_at
            else:
                decision, decided_at = ev.event, ev.created_at
                detail = ev.detail or {}
                comment = detail.get("comment")
                if ev.event == "edited":
                    edited = tuple(detail.get("edited_fields") or ())
    if decision is None and applied_at is not None:
        decision, decided_at = "accepted", applied_at
    return SuggestionRecord(
        id=base["id"],
        user_id=base["user_id"],
        team_id=base.get("team_id"),
        customer_id=base["customer_id"],
        action_type=base["action_type"],
        title=base.get("title") or "",
        citations=tuple(base.get("citations") or ()),
        created_at=as_utc(base.get("created_at")),
        shown_at=shown_at,
        channel=channel,
        decision=decision,
        decided_at=decided_at,
        first_action_at=first_action,
        applied_at=applied_at,
        dismiss_reason=dismiss_reason(comment) if decision == "dismissed" else None,
        comment=comment,
        edited_fields=edited,
    )


def load_records(engine: Engine, *, user_ids: set[str] | None = None) -> list[SuggestionRecord]:
    """Every suggestion of ``user_ids`` (None = everyone's) with its events folded."""
    s, u, e = t.suggestions, t.users, t.suggestion_events
    query = select(
        s.c.id, s.c.user_id, s.c.customer_id, s.c.action_type, s.c.title, s.c.citations, s.c.created_at,
        u.c.team_id,
    ).select_from(s.outerjoin(u, u.c.id == s.c.user_id))  # fmt: skip
    ev_query = select(e.c.suggestion_id, e.c.event, e.c.channel, e.c.detail, e.c.created_at)
    if user_ids is not None:
        query = query.where(s.c.user_id.in_(sorted(user_ids)))
        ev_query = ev_query.where(e.c.user_id.in_(sorted(user_ids)))
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
        by_sid: dict[str, list[Event]] = defaultdict(list)
        for r in conn.execute(ev_query):
            by_sid[r.suggestion_id].append(Event(r.event, as_utc(r.created_at), r.channel, r.detail))
    return [fold(r, by_sid.get(r["id"], ())) for r in rows]
