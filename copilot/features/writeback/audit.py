"""The audit log: who changed what in the CRM, when, from what to what, on which evidence."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from copilot.storage.tables import audit_log


def record(
    conn: Connection,
    *,
    user_id: str | None,
    action: str,
    target: str | None,
    before: Any = None,
    after: Any = None,
    evidence_ids: list[str] | tuple[str, ...] = (),
    key: str | None = None,
    at: datetime | None = None,
    detail: dict[str, Any] | None = None,
) -> int:
    """Write one entry inside the caller's transaction; returns its id."""
    result = conn.execute(
        insert(audit_log).values(
            at=at or datetime.now(UTC),
            user_id=user_id,
            action=action,
            target=target,
            before=before,
            after=after,
            evidence=list(evidence_ids),
            idempotency_key=key,
            detail=detail,
        )
    )
    return int(result.inserted_primary_key[0])


def entries(
    engine: Engine, *, key: str | None = None, target: str | None = None, user_id: str | None = None
) -> list[dict[str, Any]]:
    c = audit_log.c
    stmt = select(audit_log).order_by(c.id)
    if key is not None:
        stmt = stmt.where(c.idempotency_key == key)
    if target is not None:
        stmt = stmt.where(c.target == target)
    if user_id is not None:
        stmt = stmt.where(c.user_id == user_id)
    with engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    out = []
    for row in rows:
        item = dict(row)
        at = item["at"]
        item["at"] = (at.replace(tzinfo=UTC) if at.tzinfo is None else at).isoformat()
        item["evidence_ids"] = item.pop("evidence") or []
        item["key"] = item.pop("idempotency_key")
        out.append(item)
    return out
