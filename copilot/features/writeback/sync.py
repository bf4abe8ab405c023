"""Sync back: read opportunity stage moves and won/lost from the configured CRM into ``crm_outcomes``.

Adoption analytics join suggestions with what happened next in the CRM; reading outcomes through
the CRM port (``get_customer``) means they see the same data whichever CRM is connected, including
stage changes made directly in Salesforce or HubSpot. Polling is idempotent: a stage already
recorded as an opportunity's latest is not recorded again, and (crm, opportunity, seq) is unique,
so two pollers racing over the same move store it once.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from connectors.crm.base import CRM, Opportunity
from connectors.crm.errors import CRMError
from copilot.storage.tables import crm_outcomes

logger = logging.getLogger(__name__)

OUTCOMES = {"赢单": "won", "输单": "lost"}


@dataclass(slots=True)
class SyncReport:
    customers: int = 0
    opportunities: int = 0
    recorded: int = 0  # new rows in crm_outcomes (stage moves, incl. won/lost)
    errors: int = 0  # customers the CRM could not return this time (retried next poll)

    def to_json(self) -> dict[str, int]:
        return asdict(self)


def sync_outcomes(
    engine: Engine, crm: CRM, *, now: datetime | None = None, customer_ids: list[str] | None = None
) -> SyncReport:
    """Poll ``crm`` for every customer (or ``customer_ids``) and record stage moves it has not seen.

    Raises ``CRMError`` only if the customer list itself cannot be read; a customer that fails is
    counted in ``errors`` and picked up by the next poll.
    """
    now = now or datetime.now(UTC)
    report = SyncReport()
    ids = customer_ids if customer_ids is not None else [c.id for c in crm.list_customers()]
    for customer_id in ids:
        try:
            snapshot = crm.get_customer(customer_id)
        except CRMError as exc:
            report.errors += 1
            logger.warning("sync-back: customer %s unavailable (status %s)", customer_id, exc.status)
            continue
        if snapshot is None:
            continue
        report.customers += 1
        for opp in snapshot.opportunities:
            report.opportunities += 1
            report.recorded += _record(engine, crm.name, snapshot.id, opp, now)
    logger.info("sync-back from %s: %s", crm.name, report.to_json())
    return report


def _record(engine: Engine, crm_name: str, customer_id: str, opp: Opportunity, now: datetime) -> int:
    c = crm_outcomes.c
    try:
        with engine.begin() as conn:
            last = conn.execute(
                select(c.seq, c.stage)
                .where(c.crm == crm_name, c.opportunity_id == opp.id)
                .order_by(c.seq.desc())
                .limit(1)
            ).first()
            if last is None:  # first sight: the CRM's own history when it keeps one, then the current stage
                steps = [(h.stage, h.entered) for h in opp.stage_history]
                if not steps or steps[-1][0] != opp.stage:
                    steps.append((opp.stage, opp.stage_entered))
            elif last.stage != opp.stage:
                steps = [(opp.stage, opp.stage_entered or now.date().isoformat())]
            else:
                return 0
            previous, seq, added = (last.stage if last else None), (last.seq if last else 0), 0
            for stage, entered in steps:
                if stage == previous:
                    continue
                seq += 1
                conn.execute(
                    insert(crm_outcomes).values(
                        crm=crm_name,
                        customer_id=customer_id,
                        opportunity_id=opp.id,
                        seq=seq,
                        stage=stage,
                        previous_stage=previous,
                        outcome=OUTCOMES.get(stage),
                        entered=entered,
                        seen_at=now,
                    )
                )
                previous, added = stage, added + 1
        return added
    except IntegrityError:  # another poller recorded this move first
        return 0


def outcomes(
    engine: Engine, *, customer_id: str | None = None, crm: str | None = None
) -> list[dict[str, Any]]:
    """The recorded moves, oldest first (for adoption analytics)."""
    c = crm_outcomes.c
    stmt = select(crm_outcomes).order_by(c.crm, c.opportunity_id, c.seq)
    if customer_id is not None:
        stmt = stmt.where(c.customer_id == customer_id)
    if crm is not None:
        stmt = stmt.where(c.crm == crm)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(stmt).mappings()]
    for row in rows:
        seen = row["seen_at"]
        row["seen_at"] = (seen.replace(tzinfo=UTC) if seen.tzinfo is None else seen).isoformat()
    return rows
