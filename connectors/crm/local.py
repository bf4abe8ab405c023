"""The embedded local CRM: the default CRM, stored next to the copilot's own tables."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from connectors.crm import local_schema as t
from connectors.crm.base import (
    Contact,
    CRMRef,
    CustomerSnapshot,
    CustomerSummary,
    NoteDraft,
    Opportunity,
    Purchase,
    StageEntry,
    StageUpdate,
    Task,
    TaskDraft,
    Visit,
    VisitDraft,
)
from connectors.crm.errors import CRMRejected

_CUSTOMER_KEYS = {"id", "name", "tier", "industry", "region", "owner_user_id", "notes"}
_CHILD_KEYS = {"contacts", "opportunities", "visits", "purchases", "tasks"}


def _split(record: dict[str, Any], known: set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Known columns vs custom fields: unknown keys are kept, never rejected."""
    return (
        {k: v for k, v in record.items() if k in known},
        {k: v for k, v in record.items() if k not in known},
    )


def _s(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


class LocalCRM:
    name = "local"

    def __init__(self, engine: Engine, *, today: Callable[[], date] | None = None) -> None:
        self._engine = engine
        self._today = today or (lambda: datetime.now(UTC).date())

    # -- reads -------------------------------------------------------------
    def list_customers(
        self, *, owner_ids: set[str] | None = None, q: str | None = None
    ) -> list[CustomerSummary]:
        stmt = select(t.customers).order_by(t.customers.c.id)
        if owner_ids is not None:
            stmt = stmt.where(t.customers.c.owner_user_id.in_(sorted(owner_ids)))
        if q:
            c = t.customers.c  # autoescape: the rep's % and _ are literal characters, not wildcards
            stmt = stmt.where(
                or_(*(col.contains(q, autoescape=True) for col in (c.name, c.industry, c.region)), c.id == q)
            )
        with self._engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [
            CustomerSummary(r["id"], r["name"], r["tier"], r["industry"], r["region"], r["owner_user_id"])
            for r in rows
        ]

    def get_customer(self, customer_id: str) -> CustomerSnapshot | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(t.customers).where(t.customers.c.id == customer_id)).mappings().first()
            if row is None:
                return None

            def children(table, order):
                return (
                    conn.execute(select(table).where(table.c.customer_id == customer_id).order_by(*order))
                    .mappings()
                    .all()
                )

            contacts = children(t.contacts, [t.contacts.c.position])
            opps = children(t.opportunities, [t.opportunities.c.created, t.opportunities.c.id])
            visits = children(t.visits, [t.visits.c.date, t.visits.c.pk])
            purchases = children(t.purchases, [t.purchases.c.month])
            tasks = children(t.tasks, [t.tasks.c.created, t.tasks.c.id])
        return CustomerSnapshot(
            id=row["id"],
            name=row["name"],
            tier=row["tier"],
            industry=row["industry"],
            region=row["region"],
            owner_user_id=row["owner_user_id"],
            notes=row["notes"] or "",
            custom=dict(row["custom"] or {}),
            contacts=tuple(Contact(c["name"], c["role"], bool(c["is_decision_maker"])) for c in contacts),
            opportunities=tuple(
                Opportunity(
                    id=o["id"],
                    name=o["name"],
                    stage=o["stage"],
                    amount=o["amount"],
                    currency=o["currency"],
                    created=o["created"],
                    stage_entered=o["stage_entered"],
                    expected_close=o["expected_close"],
                    competitors=tuple(o["competitors"] or ()),
                    stage_history=tuple(
                        StageEntry(h["stage"], h["entered"]) for h in o["stage_history"] or ()
                    ),
                    custom=dict(o["custom"] or {}),
                )
                for o in opps
            ),
            visits=tuple(
                Visit(
                    v["date"], v["type"], v["user_id"], tuple(v["contacts"] or ()), v["notes"], v["memo_id"]
                )
                for v in visits
            ),
            purchases=tuple(Purchase(p["month"], p["amount"]) for p in purchases),
            tasks=tuple(
                Task(k["id"], k["title"], k["created"], k["due"], k["status"], k["completed"]) for k in tasks
            ),
        )

    # -- writes (idempotent by key) -------------------------------------------
    def create_task(self, task: TaskDraft, *, idempotency_key: str) -> CRMRef:
        def do(conn) -> str:
            self._require_customer(conn, task.customer_id)
            tid = f"tk_{uuid.uuid4().hex[:12]}"
            extra = {k: v for k, v in {"owner_user_id": task.owner_user_id, "notes": task.notes}.items() if v}
            conn.execute(
                insert(t.tasks).values(
                    id=tid,
                    customer_id=task.customer_id,
                    title=task.title,
                    created=self._today().isoformat(),
                    due=task.due,
                    status="open",
                    custom=extra,
                )
            )
            return tid

        return self._once(idempotency_key, "task", do)

    def log_visit(self, visit: VisitDraft, *, idempotency_key: str) -> CRMRef:
        def do(conn) -> str:
            self._require_customer(conn, visit.customer_id)
            result = conn.execute(
                insert(t.visits).values(
                    customer_id=visit.customer_id,
                    date=visit.date,
                    type=visit.type,
                    user_id=visit.user_id,
                    contacts=list(visit.contacts),
                    notes=visit.notes,
                    memo_id=visit.memo_id,
                    custom={},
                )
            )
            return str(result.inserted_primary_key[0])

        return self._once(idempotency_key, "visit", do)

    def update_stage(self, change: StageUpdate, *, idempotency_key: str) -> CRMRef:
        def do(conn) -> str:
            o = t.opportunities.c
            row = conn.execute(
                select(o.stage, o.stage_history).where(
                    o.id == change.opportunity_id, o.customer_id == change.customer_id
                )
            ).first()
            if row is None:
                raise CRMRejected(
                    f"商机 {change.opportunity_id} 不存在或不属于该客户", crm=self.name, status=404
                )
            if row.stage != change.stage:
                entered = change.entered or self._today().isoformat()
                history = [*(row.stage_history or []), {"stage": change.stage, "entered": entered}]
                conn.execute(
                    update(t.opportunities)
                    .where(o.id == change.opportunity_id)
                    .values(stage=change.stage, stage_entered=entered, stage_history=history)
                )
            return change.opportunity_id

        return self._once(idempotency_key, "opportunity", do)

    def add_note(self, note: NoteDraft, *, idempotency_key: str) -> CRMRef:
        def do(conn) -> str:
            self._require_customer(conn, note.customer_id)
            nid = f"nt_{uuid.uuid4().hex[:12]}"
            conn.execute(
                insert(t.notes).values(
                    id=nid,
                    customer_id=note.customer_id,
                    body=note.body,
                    user_id=note.user_id,
                    created=self._today().isoformat(),
                    custom={},
                )
            )
            return nid

        return self._once(idempotency_key, "note", do)

    def _require_customer(self, conn, customer_id: str) -> None:
        if conn.execute(select(t.customers.c.id).where(t.customers.c.id == customer_id)).first() is None:
            raise CRMRejected(f"客户 {customer_id} 不存在", crm=self.name, status=404)

    def _once(self, key: str, kind: str, do: Callable[[Any], str]) -> CRMRef:
        """Apply ``do`` at most once per key. The key row is written first, so concurrent writers of
        the same key queue on it (SQLite's write lock / PostgreSQL's unique index) and the losers
        read the winner's record."""
        wk = t.write_keys.c
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    insert(t.write_keys).values(
                        key=key, kind=kind, record_id="", created=datetime.now(UTC).isoformat()
                    )
                )
                record_id = do(conn)
                conn.execute(update(t.write_keys).where(wk.key == key).values(record_id=record_id))
            return CRMRef(self.name, kind, record_id)
        except IntegrityError:
            with self._engine.connect() as conn:
                row = conn.execute(select(wk.kind, wk.record_id).where(wk.key == key)).one()
            return CRMRef(self.name, row.kind, row.record_id)

    # -- import --------------------------------------------------------------
    def upsert_customer(self, record: dict[str, Any]) -> bool:
        """Insert or update one customer (DESIGN §5.6 shape). Returns True when it was new.

        Child lists present in the record replace the stored ones, so re-importing the
        same file changes nothing; lists absent from the record are left as they are.
        """
        base, custom = _split(record, _CUSTOMER_KEYS | _CHILD_KEYS)
        cid = str(base["id"])
        row = {
            "id": cid,
            "name": str(base.get("name") or cid),
            "tier": _s(base.get("tier")),
            "industry": _s(base.get("industry")),
            "region": _s(base.get("region")),
            "owner_user_id": _s(base.get("owner_user_id")),
            "notes": str(base.get("notes") or ""),
        }
        with self._engine.begin() as conn:
            existing = conn.execute(select(t.customers.c.custom).where(t.customers.c.id == cid)).first()
            if existing is None:
                conn.execute(insert(t.customers).values(**row, custom=custom))
            else:
                merged = {**(existing[0] or {}), **custom}
                conn.execute(t.customers.update().where(t.customers.c.id == cid).values(**row, custom=merged))
            self._replace_children(conn, cid, record)
        return existing is None

    def _replace_children(self, conn, cid: str, record: dict[str, Any]) -> None:
        if "contacts" in record:
            conn.execute(delete(t.contacts).where(t.contacts.c.customer_id == cid))
            for i, c in enumerate(record["contacts"] or []):
                known, extra = _split(c, {"name", "role", "is_decision_maker"})
                conn.execute(
                    insert(t.contacts).values(
                        customer_id=cid,
                        position=i,
                        name=str(known.get("name", "")),
                        role=str(known.get("role") or ""),
                        is_decision_maker=bool(known.get("is_decision_maker", False)),
                        custom=extra,
                    )
                )
        if "opportunities" in record:
            conn.execute(delete(t.opportunities).where(t.opportunities.c.customer_id == cid))
            keys = {c.name for c in t.opportunities.c} - {"customer_id", "custom"}
            for o in record["opportunities"] or []:
                known, extra = _split(o, keys)
                amount = known.get("amount")
                conn.execute(
                    insert(t.opportunities).values(
                        id=str(known["id"]),
                        customer_id=cid,
                        name=str(known.get("name") or known["id"]),
                        stage=str(known.get("stage") or "线索"),
                        amount=float(amount) if amount not in (None, "") else None,
                        currency=str(known.get("currency") or "CNY"),
                        created=_s(known.get("created")),
                        stage_entered=_s(known.get("stage_entered")),
                        expected_close=_s(known.get("expected_close")),
                        competitors=list(known.get("competitors") or []),
                        stage_history=list(known.get("stage_history") or []),
                        custom=extra,
                    )
                )
        if "visits" in record:
            conn.execute(delete(t.visits).where(t.visits.c.customer_id == cid))
            keys = {"date", "type", "user_id", "contacts", "notes", "memo_id"}
            for v in record["visits"] or []:
                known, extra = _split(v, keys)
                conn.execute(
                    insert(t.visits).values(
                        customer_id=cid,
                        date=str(known["date"]),
                        type=str(known.get("type") or ""),
                        user_id=_s(known.get("user_id")),
                        contacts=list(known.get("contacts") or []),
                        notes=str(known.get("notes") or ""),
                        memo_id=_s(known.get("memo_id")),
                        custom=extra,
                    )
                )
        if "purchases" in record:
            conn.execute(delete(t.purchases).where(t.purchases.c.customer_id == cid))
            for p in record["purchases"] or []:
                conn.execute(
                    insert(t.purchases).values(
                        customer_id=cid, month=str(p["month"]), amount=float(p["amount"])
                    )
                )
        if "tasks" in record:
            conn.execute(delete(t.tasks).where(t.tasks.c.customer_id == cid))
            keys = {"id", "title", "created", "due", "status", "completed"}
            for k in record["tasks"] or []:
                known, extra = _split(k, keys)
                conn.execute(
                    insert(t.tasks).values(
                        id=str(known["id"]),
                        customer_id=cid,
                        title=str(known.get("title") or ""),
                        created=_s(known.get("created")),
                        due=_s(known.get("due")),
                        status=str(known.get("status") or "open"),
                        completed=_s(known.get("completed")),
                        custom=extra,
                    )
                )
