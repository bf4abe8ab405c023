"""Conversation state in the database, so that any API process can answer the next turn (DESIGN §5.7).

A conversation keeps: the focus customer, the last answer's numbered suggestions (「确认 2」), one
pending proposed change, a pending clarification (the options offered and the question that needed
them) and the last turns. After ``idle_minutes`` without a turn the state starts afresh (same id).
A WeCom/DingTalk chat is found by its ``channel_key`` (channel × chat × user).
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from copilot.storage import tables as t

MAX_TURNS = 6


@dataclass
class State:
    id: str
    user_id: str
    focus_customer_id: str | None = None
    suggestion_ids: list[str] = field(default_factory=list)
    pending: dict[str, Any] | None = None  # {"id","op","customer_id","fields","status"}
    clarify: dict[str, Any] | None = (
        None  # {"question","options":[{"n","label","customer_id"}],"message","intent"}
    )
    turns: list[dict[str, Any]] = field(default_factory=list)  # {"role","text","intent","customer_id"}

    def remember(
        self, role: str, text: str, intent: str | None = None, customer_id: str | None = None
    ) -> None:
        self.turns.append({"role": role, "text": text[:500], "intent": intent, "customer_id": customer_id})
        del self.turns[:-MAX_TURNS]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("id")
        data.pop("user_id")
        return data


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)  # SQLite returns naive UTC


class ConversationStore:
    def __init__(self, engine: Engine, *, idle_minutes: float = 120) -> None:
        self.engine = engine
        self.idle = timedelta(minutes=idle_minutes)

    def open(
        self, user_id: str, *, conversation_id: str | None = None, channel_key: str | None = None
    ) -> State:
        """The user's conversation by id or channel key (a new one when unknown, another user's, or none)."""
        c = t.conversations.c
        row = None
        with self.engine.connect() as conn:
            if conversation_id:
                row = conn.execute(select(t.conversations).where(c.id == conversation_id)).first()
                if row is not None and row.user_id != user_id:
                    row = None  # never another user's conversation: start a new one
            elif channel_key:
                row = conn.execute(select(t.conversations).where(c.channel_key == channel_key[:200])).first()
        if row is None:
            return self._create(user_id, channel_key)
        state = State(id=row.id, user_id=row.user_id)
        if datetime.now(UTC) - _aware(row.updated_at) <= self.idle:
            data = dict(row.state or {})
            state.focus_customer_id = data.get("focus_customer_id")
            state.suggestion_ids = list(data.get("suggestion_ids") or [])
            state.pending = data.get("pending")
            state.clarify = data.get("clarify")
            state.turns = list(data.get("turns") or [])
        return state

    def _create(self, user_id: str, channel_key: str | None) -> State:
        state = State(id=f"cv_{secrets.token_hex(12)}", user_id=user_id)
        now = datetime.now(UTC)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(t.conversations).values(
                    id=state.id, user_id=user_id, channel_key=channel_key[:200] if channel_key else None,
                    state=state.to_json(), created_at=now, updated_at=now,
                ))  # fmt: skip
        except IntegrityError:  # the same chat's first two messages at once: use the one stored first
            return self.open(user_id, channel_key=channel_key)
        return state

    def save(self, state: State) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(t.conversations)
                .where(t.conversations.c.id == state.id)
                .values(state=state.to_json(), updated_at=datetime.now(UTC))
            )
