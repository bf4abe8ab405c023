"""The outbox: CRM writes queued inside the caller's transaction, delivered after it commits.

A row is keyed by its idempotency key (unique), so queuing the same change twice queues it once,
and the CRM adapter receives the same key on every attempt, so a retry after a timeout where the
CRM did write leaves one CRM record. Deliverers claim a row with a short lease; a process that
dies mid-delivery leaves the row pending, and the lease expires so another deliverer takes it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from connectors.crm.base import CRM, draft_for, write
from connectors.crm.errors import CRMError, CRMRejected, CRMUnavailable
from copilot.storage.tables import outbox

logger = logging.getLogger(__name__)

PENDING, DELIVERED, FAILED, CANCELLED = "pending", "delivered", "failed", "cancelled"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_delay_s: float = 2.0
    max_delay_s: float = 3600.0
    max_attempts: int = 10
    lease_s: float = 120.0  # longer than any single CRM call (client timeouts are ~10 s per request)

    def delay(
        self, attempts: int, retry_after: float | None, rng: Callable[[], float] = random.random
    ) -> float:
        """Exponential backoff with jitter (½–1× of base·2^(n−1), capped), never sooner than Retry-After."""
        backoff = min(self.max_delay_s, self.base_delay_s * 2 ** max(0, attempts - 1))
        backoff *= 0.5 + rng() / 2
        return max(backoff, retry_after or 0.0)


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0

    def __add__(self, other: DeliveryReport) -> DeliveryReport:
        return DeliveryReport(
            self.delivered + other.delivered, self.retrying + other.retrying, self.failed + other.failed
        )


def utcnow() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands timestamps back naive; everything here is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def enqueue(
    conn: Connection,
    op: str,
    payload: dict[str, Any],
    key: str,
    *,
    user_id: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Queue ``op`` inside the caller's transaction. Returns False when ``key`` is already queued
    (then nothing is written: the first row stands). Raises ValueError for an invalid op/payload."""
    draft_for(op, payload)  # reject what no CRM could ever accept before it is queued
    now = now or utcnow()
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = (
        insert(outbox)
        .values(
            idempotency_key=key,
            op=op,
            payload=payload,
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            user_id=user_id,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(outbox.c.id)
    )
    # A row comes back only when it was inserted. (Not rowcount: PostgreSQL reports -1 for an
    # INSERT … RETURNING, which SQLAlchemy adds there to fetch the new id.)
    return conn.execute(stmt).first() is not None


def deliver_pending(
    engine: Engine,
    crm: CRM,
    now: datetime | None = None,
    *,
    policy: RetryPolicy = RetryPolicy(),
    limit: int = 100,
    on_failed: Callable[[dict[str, Any]], None] | None = None,
) -> DeliveryReport:
    """Deliver every due pending row (after the enqueuing transaction committed)."""
    now = now or utcnow()
    c = outbox.c
    with engine.connect() as conn:
        ids = conn.execute(
            select(c.id)
            .where(c.status == PENDING, or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now))
            .order_by(c.id)
            .limit(limit)
        ).scalars()
        ids = list(ids)
    report = DeliveryReport()
    for row_id in ids:
        report += deliver_row(engine, crm, row_id, now, policy=policy, on_failed=on_failed)
    return report


def deliver_key(
    engine: Engine,
    crm: CRM,
    key: str,
    now: datetime | None = None,
    *,
    policy: RetryPolicy = RetryPolicy(),
    force: bool = False,
    on_failed: Callable[[dict[str, Any]], None] | None = None,
) -> DeliveryReport:
    """Deliver the row of ``key`` now; ``force`` ignores its backoff (a rep pressing "apply" again)."""
    with engine.connect() as conn:
        row_id = conn.execute(select(outbox.c.id).where(outbox.c.idempotency_key == key)).scalar()
    if row_id is None:
        return DeliveryReport()
    return deliver_row(engine, crm, row_id, now, policy=policy, force=force, on_failed=on_failed)


def _claim(engine: Engine, row_id: int, now: datetime, policy: RetryPolicy, force: bool) -> dict | None:
    c = outbox.c
    due = or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now)
    free = or_(c.locked_until.is_(None), c.locked_until <= now)
    conditions = [c.id == row_id, c.status == PENDING, free] + ([] if force else [due])
    with engine.begin() as conn:
        claimed = conn.execute(
            update(outbox)
            .where(and_(*conditions))
            .values(locked_until=now + timedelta(seconds=policy.lease_s))
        ).rowcount
        if claimed != 1:
            return None
        return dict(conn.execute(select(outbox).where(c.id == row_id)).mappings().one())


def deliver_row(
    engine: Engine,
    crm: CRM,
    row_id: int,
    now: datetime | None = None,
    *,
    policy: RetryPolicy = RetryPolicy(),
    force: bool = False,
    on_failed: Callable[[dict[str, Any]], None] | None = None,
    rng: Callable[[], float] = random.random,
) -> DeliveryReport:
    now = now or utcnow()
    row = _claim(engine, row_id, now, policy, force)
    if row is None:  # not due, delivered, or another deliverer holds it
        return DeliveryReport()
    attempts = row["attempts"] + 1
    values: dict[str, Any] = {"attempts": attempts, "locked_until": None}
    try:
        ref = write(
            crm, row["op"], draft_for(row["op"], row["payload"]), idempotency_key=row["idempotency_key"]
        )
    except CRMUnavailable as exc:
        if attempts >= policy.max_attempts:
            values |= {"status": FAILED, "last_error": f"已重试 {attempts} 次仍未成功。{exc.user_message}"}
            outcome = DeliveryReport(failed=1)
        else:
            delay = policy.delay(attempts, exc.retry_after, rng)
            values |= {"next_attempt_at": now + timedelta(seconds=delay), "last_error": exc.user_message}
            outcome = DeliveryReport(retrying=1)
        logger.warning("outbox %s attempt %s: CRM unavailable (status %s)", row_id, attempts, exc.status)
    except (CRMRejected, CRMError, ValueError) as exc:
        message = exc.user_message if isinstance(exc, CRMError) else f"CRM 写入内容无效：{exc}"
        values |= {"status": FAILED, "last_error": message}
        outcome = DeliveryReport(failed=1)
        logger.warning("outbox %s rejected (status %s)", row_id, getattr(exc, "status", None))
    else:
        values |= {"status": DELIVERED, "result": ref.to_json(), "delivered_at": now, "last_error": None}
        outcome = DeliveryReport(delivered=1)
        logger.info("outbox %s delivered as %s %s", row_id, ref.kind, ref.id)
    with engine.begin() as conn:
        conn.execute(update(outbox).where(outbox.c.id == row_id).values(**values))
    if outcome.failed and on_failed is not None:
        on_failed({**row, **values})
    return outcome


def get(engine: Engine, key: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(outbox).where(outbox.c.idempotency_key == key)).mappings().first()
    return to_json(dict(row)) if row else None


def to_json(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k != "locked_until"}
    out["key"] = out.pop("idempotency_key")
    for name in ("next_attempt_at", "created_at", "delivered_at"):
        value = _utc(out.get(name))
        out[name] = value.isoformat() if value else None
    return out


def count(engine: Engine) -> int:
    """How many CRM writes have been queued in all (each confirmed change is one row)."""
    from sqlalchemy import func

    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(outbox)).scalar_one())
