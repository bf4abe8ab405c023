"""Apply a confirmed change: one transaction (audit entry + outbox row + the caller's own marks),
then delivery after commit. Applying the same key again never writes twice."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from connectors.crm.base import CRM, StageUpdate, draft_fields, draft_for
from connectors.crm.errors import CRMError
from copilot.features.writeback import audit, outbox

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    key: str
    status: str  # pending | delivered | failed | cancelled
    duplicate: bool  # the key had been applied before; nothing new was queued or audited
    ref: dict[str, str] | None  # the CRM record, once delivered: {"crm","kind","id"}
    message: str | None  # Chinese, for the rep: why it failed or is still waiting
    outbox_id: int

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "status": self.status,
            "duplicate": self.duplicate,
            "ref": self.ref,
            "message": self.message,
            "outbox_id": self.outbox_id,
        }


def _before(crm: CRM, op: str, draft: Any) -> Any:
    """What the change replaces (only a stage update replaces anything); best effort when the CRM is down."""
    if not isinstance(draft, StageUpdate):
        return None
    try:
        snapshot = crm.get_customer(draft.customer_id)
    except CRMError:
        return {"unavailable": True}
    for opp in snapshot.opportunities if snapshot else ():
        if opp.id == draft.opportunity_id:
            return {"opportunity_id": opp.id, "stage": opp.stage, "stage_entered": opp.stage_entered}
    return None


def apply_change(
    engine: Engine,
    crm: CRM,
    *,
    user_id: str,
    change: dict[str, Any],
    evidence_ids: list[str] | tuple[str, ...],
    key: str,
    in_transaction: Callable[[Connection], None] | None = None,
    deliver: bool = True,
    now: datetime | None = None,
    policy: outbox.RetryPolicy = outbox.RetryPolicy(),
    on_failed: Callable[[dict[str, Any]], None] | None = None,
    audit_detail: dict[str, Any] | None = None,
) -> ApplyResult:
    """Queue ``change`` (``{"op": ..., "fields": {...}}``, DESIGN §5.4 proposed_change) under ``key``.

    In one transaction: the outbox row, an audit entry (who, when, what, before/after, evidence ids)
    and ``in_transaction(conn)`` (e.g. marking the suggestion accepted). Only the first apply of a
    key does this; later ones (concurrent, or after a timeout) find the row and just deliver it.
    Delivery runs after commit; the CRM sees ``key`` as its idempotency key. Permissions are the
    caller's job. ``audit_detail`` goes into the audit entry as is (e.g. the rep's edit of the
    proposed fields: ``{"suggestion_id", "original", "edited"}``). Raises ValueError (Chinese
    message) if the change is invalid.
    """
    op = str(change.get("op", ""))
    draft = draft_for(op, dict(change.get("fields") or {}))
    payload = draft_fields(draft)
    now = now or outbox.utcnow()
    before = _before(crm, op, draft) if outbox.get(engine, key) is None else None
    with engine.begin() as conn:
        new = outbox.enqueue(conn, op, payload, key, user_id=user_id, now=now)
        if new:
            audit.record(
                conn,
                user_id=user_id,
                action=f"crm.{op}",
                target=f"customer:{draft.customer_id}",
                before=before,
                after=payload,
                evidence_ids=evidence_ids,
                key=key,
                at=now,
                detail=audit_detail,
            )
            if in_transaction is not None:
                in_transaction(conn)
    logger.info("change %s queued (new=%s) by user %s", key, new, user_id)
    if deliver:
        outbox.deliver_key(engine, crm, key, now, policy=policy, force=True, on_failed=on_failed)
    row = outbox.get(engine, key)
    assert row is not None
    return ApplyResult(
        key=key,
        status=row["status"],
        duplicate=not new,
        ref=row["result"],
        message=row["last_error"] if row["status"] != outbox.DELIVERED else None,
        outbox_id=row["id"],
    )
