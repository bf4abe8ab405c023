"""What `copilot outbox list|retry|cancel --json` does; the CLI only parses arguments and prints.

Each function returns one JSON-ready document. Nothing is ever deleted: a cancelled row stays,
marked ``cancelled``, with an audit entry naming who cancelled it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update

from copilot.features.writeback import audit
from copilot.features.writeback.outbox import CANCELLED, FAILED, PENDING, to_json, utcnow
from copilot.storage.tables import outbox

STATUSES = ("pending", "delivered", "failed", "cancelled")


def list_outbox(engine: Engine, *, status: str | None = None, limit: int = 200) -> dict[str, Any]:
    """``{"items": [row…], "counts": {status: n}}``; by default the rows that still need attention."""
    c = outbox.c
    stmt = select(outbox).order_by(c.id).limit(limit)
    if status is not None:
        if status not in STATUSES:
            raise ValueError(f"未知状态：{status}；可选：{', '.join(STATUSES)}")
        stmt = stmt.where(c.status == status)
    else:
        stmt = stmt.where(c.status.in_([PENDING, FAILED]))
    with engine.connect() as conn:
        rows = [to_json(dict(r)) for r in conn.execute(stmt).mappings()]
        counts = {s: 0 for s in STATUSES}
        for (s,) in conn.execute(select(c.status)):
            counts[s] = counts.get(s, 0) + 1
    return {"items": rows, "counts": counts}


def retry_outbox(
    engine: Engine, ids: list[int] | None = None, *, user_id: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Make failed (and waiting pending) rows due now, with a fresh attempt budget. ``ids=None``: all."""
    now = now or utcnow()
    c = outbox.c
    stmt = update(outbox).where(c.status.in_([PENDING, FAILED]))
    if ids is not None:
        stmt = stmt.where(c.id.in_(ids))
    with engine.begin() as conn:
        touched = _ids(conn, ids, [PENDING, FAILED])
        conn.execute(stmt.values(status=PENDING, attempts=0, next_attempt_at=now, locked_until=None))
        for row_id in touched:
            audit.record(conn, user_id=user_id, action="outbox.retry", target=f"outbox:{row_id}", at=now)
    return {"retried": touched}


def cancel_outbox(
    engine: Engine, ids: list[int], *, user_id: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Cancel pending or failed rows (never delivered ones); each cancellation is audited."""
    now = now or utcnow()
    c = outbox.c
    with engine.begin() as conn:
        touched = _ids(conn, ids, [PENDING, FAILED])
        conn.execute(update(outbox).where(c.id.in_(touched)).values(status=CANCELLED, locked_until=None))
        for row_id in touched:
            audit.record(conn, user_id=user_id, action="outbox.cancel", target=f"outbox:{row_id}", at=now)
    return {"cancelled": touched, "not_cancellable": sorted(set(ids) - set(touched))}


def _ids(conn, ids: list[int] | None, statuses: list[str]) -> list[int]:
    stmt = select(outbox.c.id).where(outbox.c.status.in_(statuses)).order_by(outbox.c.id)
    if ids is not None:
        stmt = stmt.where(outbox.c.id.in_(ids))
    return list(conn.execute(stmt).scalars())
