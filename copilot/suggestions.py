"""Next-best-action suggestions for a customer: plan (offline or LLM), store with dedup, feedback, apply.

``Suggester.for_customer(user, customer_id)`` is what the API, the CLI and the chat call. Asking again
returns the open suggestions, refreshed; the same suggestion (same customer, action type and evidence)
is stored once per user, so adoption counts stay honest (DESIGN §7). Events: proposed → shown →
accepted / edited / dismissed → applied.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from connectors.crm.base import CRM, CustomerSnapshot
from copilot.access import customer_for, customers_for
from copilot.agent.citations import short_name
from copilot.agent.evidence import PassageFinder, SourceResolver, gather, load_memos
from copilot.agent.llm_planner import plan_llm
from copilot.agent.offline_planner import PlanResult, clean_change, fingerprint, plan_offline
from copilot.agent.rules import Facts, RuleStore, customer_facts, evaluate
from copilot.domain import Citation, ProposedChange, Suggestion, User
from copilot.errors import AppError
from copilot.features.writeback.change_fields import (
    MAX_YEAR,
    MIN_YEAR,
    InvalidChange,
    check_people,
    validate_change,
)
from copilot.llm.chat_model import ChatModel
from copilot.storage import tables as t
from copilot.users import UserDirectory
from copilot.writeback.apply import apply_change
from copilot.writeback.delivery import failure_notifier

if TYPE_CHECKING:
    from knowledge_base.base import KnowledgeBase

logger = logging.getLogger(__name__)
OPEN = ("proposed", "accepted", "edited")
FEEDBACK = {"accept": "accepted", "edit": "edited", "dismiss": "dismissed"}
_BATTLECARD_PREFIX = re.compile(r"^(竞品攻防卡|竞品对比|竞品分析|攻防卡|battlecard)\s*[：:]\s*", re.I)


def parse_as_of(value: str | date | None) -> date:
    """The day treated as today; 422 for a malformed one or one outside 2000–2099 (date arithmetic
    on 0001-01-01 or 9999-12-31 overflows)."""
    if value is None or value == "":
        return datetime.now(UTC).date()
    if isinstance(value, date):
        day = value
    else:
        try:
            day = date.fromisoformat(str(value)[:10])
        except ValueError as exc:
            raise AppError("validation_error", f"日期格式应为 YYYY-MM-DD：{str(value)[:20]}") from exc
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise AppError("validation_error", f"as_of 应在 {MIN_YEAR}-01-01 至 {MAX_YEAR}-12-31 之间。")
    return day


def competitor_names(kb: KnowledgeBase | None) -> list[str]:
    """Competitors the KB has battlecards for (``竞品攻防卡：智云科技`` → 智云科技)."""
    names = []
    for doc in kb.documents() if kb is not None else []:
        if doc.doc_type == "battlecard":
            m = _BATTLECARD_PREFIX.match(doc.title or "")
            name = doc.title[m.end() :].strip() if m else ""
            if 2 <= len(name) <= 16:
                names.append(name)
    return names


def _citation(c: dict[str, Any]) -> Citation:
    return Citation(
        c["kind"], c["ref"], c.get("locator", ""), c.get("source", ""), c["quote"], c.get("label", "")
    )


def _row_to_suggestion(row: Any) -> Suggestion:
    change = row.proposed_change
    created = row.created_at
    return Suggestion(
        id=row.id,
        customer_id=row.customer_id,
        action_type=row.action_type,
        title=row.title,
        rationale=row.rationale,
        confidence=row.confidence,
        citations=tuple(_citation(c) for c in row.citations or []),
        proposed_change=ProposedChange(change["op"], dict(change.get("fields") or {})) if change else None,
        status=row.status,
        created_at=created.isoformat() if hasattr(created, "isoformat") else str(created),
    )


def _change_json(change: ProposedChange | None) -> dict[str, Any] | None:
    return {"op": change.op, "fields": change.fields} if change else None


class SuggestionStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def suggestion_id(user_id: str, fp: str) -> str:
        return "sg_" + hashlib.sha256(f"{user_id}|{fp}".encode()).hexdigest()[:20]

    def _event(self, conn: Connection, sid: str, user_id: str, event: str, *, channel: str | None = None,
               detail: dict[str, Any] | None = None) -> None:  # fmt: skip
        conn.execute(
            insert(t.suggestion_events).values(
                suggestion_id=sid,
                user_id=user_id,
                event=event,
                channel=channel,
                detail=detail,
                created_at=datetime.now(UTC),
            )
        )

    def upsert(self, user_id: str, suggestions: list[Suggestion]) -> list[Suggestion]:
        """Store new suggestions (event ``proposed``), refresh known open ones; dismissed/applied stay hidden."""
        out: list[Suggestion] = []
        for s in suggestions:
            for _attempt in range(2):
                try:
                    stored = self._upsert_one(user_id, s)
                    break
                except IntegrityError:  # a concurrent request stored the same fingerprint first
                    continue
            else:  # pragma: no cover - two races in a row
                stored = None
            if stored is not None and stored.status in OPEN:
                out.append(stored)
        return out

    def _upsert_one(self, user_id: str, s: Suggestion) -> Suggestion | None:
        fp = fingerprint(s.customer_id, s.action_type, s.citations)
        now = datetime.now(UTC)
        citations = [c.to_json() for c in s.citations]
        with self.engine.begin() as conn:
            row = conn.execute(
                select(t.suggestions).where(
                    t.suggestions.c.user_id == user_id, t.suggestions.c.fingerprint == fp
                )
            ).first()
            if row is None:
                sid = self.suggestion_id(user_id, fp)
                conn.execute(
                    insert(t.suggestions).values(
                        id=sid,
                        customer_id=s.customer_id,
                        user_id=user_id,
                        action_type=s.action_type,
                        title=s.title,
                        rationale=s.rationale,
                        confidence=s.confidence,
                        citations=citations,
                        proposed_change=_change_json(s.proposed_change),
                        status="proposed",
                        fingerprint=fp,
                        created_at=now,
                        updated_at=now,
                    )  # fmt: skip
                )
                self._event(conn, sid, user_id, "proposed")
                logger.info("suggestion %s proposed for customer %s", sid, s.customer_id)
                return replace(s, id=sid, status="proposed", created_at=now.isoformat(timespec="seconds"))
            if row.status not in OPEN:
                return _row_to_suggestion(row)
            values: dict[str, Any] = {"citations": citations, "confidence": s.confidence, "updated_at": now}
            if row.status != "edited" and not self.was_edited(conn, row.id):  # keep the rep's own wording
                values.update(
                    title=s.title, rationale=s.rationale, proposed_change=_change_json(s.proposed_change)
                )
            conn.execute(update(t.suggestions).where(t.suggestions.c.id == row.id).values(**values))
            fresh = conn.execute(select(t.suggestions).where(t.suggestions.c.id == row.id)).one()
            return _row_to_suggestion(fresh)

    def mark_shown(self, user_id: str, ids: list[str], *, channel: str | None = None) -> None:
        """Log ``shown`` once per suggestion (re-asking must not inflate adoption's denominator)."""
        if not ids:
            return
        with self.engine.begin() as conn:
            done = set(
                conn.execute(
                    select(t.suggestion_events.c.suggestion_id).where(
                        t.suggestion_events.c.suggestion_id.in_(ids), t.suggestion_events.c.event == "shown"
                    )
                ).scalars()
            )
            for sid in ids:
                if sid not in done:
                    self._event(conn, sid, user_id, "shown", channel=channel)

    def get(self, sid: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(t.suggestions).where(t.suggestions.c.id == sid)).first()

    def feedback(self, user_id: str, sid: str, action: str, *, comment: str | None, edited: dict[str, Any] | None,
                 channel: str | None = None) -> Suggestion:  # fmt: skip
        status = FEEDBACK[action]
        with self.engine.begin() as conn:
            row = conn.execute(select(t.suggestions).where(t.suggestions.c.id == sid)).first()
            if row is None or row.user_id != user_id:
                raise AppError("not_found", "建议不存在。")
            if row.status in ("dismissed", "applied") and row.status != status:
                raise AppError(
                    "conflict",
                    f"该建议已{'忽略' if row.status == 'dismissed' else '执行'}，不能再修改。",
                    status=409,
                )
            values: dict[str, Any] = {"status": status, "updated_at": datetime.now(UTC)}
            changes = _edit_values(row, edited) if action == "edit" and edited else {}
            changes = {k: v for k, v in changes.items() if getattr(row, k) != v}
            values.update(changes)
            conn.execute(update(t.suggestions).where(t.suggestions.c.id == sid).values(**values))
            detail: dict[str, Any] = {
                k: v for k, v in {"comment": comment, "edited_fields": sorted(edited or {})}.items() if v
            }
            if changes:  # what the rep changed, from what: the audit of the CRM write cites the original
                detail["original"] = {k: getattr(row, k) for k in changes}
                detail["edited"] = changes
            self._event(conn, sid, user_id, status, channel=channel, detail=detail or None)
            fresh = conn.execute(select(t.suggestions).where(t.suggestions.c.id == sid)).one()
        logger.info("suggestion %s %s by user %s", sid, status, user_id)
        return _row_to_suggestion(fresh)

    @staticmethod
    def was_edited(conn: Connection, sid: str) -> bool:
        ev = t.suggestion_events.c
        return (
            conn.execute(select(ev.id).where(ev.suggestion_id == sid, ev.event == "edited").limit(1)).first()
            is not None
        )

    def edit_history(self, sid: str) -> dict[str, Any] | None:
        """The proposed change as first proposed, if the rep edited it since: ``{"original",
        "edits", "edited_at"}``; None when the change was never edited."""
        ev = t.suggestion_events.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ev.detail, ev.created_at)
                .where(ev.suggestion_id == sid, ev.event == "edited")
                .order_by(ev.id)
            ).all()
        edits = [r for r in rows if "proposed_change" in ((r.detail or {}).get("original") or {})]
        if not edits:
            return None
        at = edits[-1].created_at
        return {
            "original": edits[0].detail["original"]["proposed_change"],
            "edits": len(edits),
            "edited_at": at.isoformat() if hasattr(at, "isoformat") else str(at),
        }


def _edit_values(row: Any, edited: dict[str, Any]) -> dict[str, Any]:
    """The columns a rep's edit changes. ``proposed_change`` may be partial (fields merged over the
    proposed ones, op kept when omitted) or None (no CRM change). A new title also becomes the
    title of a proposed task that carried the old title."""
    out: dict[str, Any] = {}
    if isinstance(edited.get("title"), str) and edited["title"].strip():
        out["title"] = edited["title"].strip()[:200]
    if isinstance(edited.get("rationale"), str):
        out["rationale"] = edited["rationale"].strip()[:1000]
    current = row.proposed_change or {}
    if "proposed_change" in edited:
        raw = edited["proposed_change"]
        if raw is None:
            out["proposed_change"] = None
            return out
        if not isinstance(raw, dict) or not isinstance(raw.get("fields", {}), dict):
            raise AppError("validation_error", "修改后的 CRM 变更不合法（op 或字段有误）。")
        op = raw.get("op") or current.get("op")
        base = dict(current.get("fields") or {}) if op == current.get("op") else {}
        given = raw.get("fields") or {}
        if given.get("customer_id", row.customer_id) != row.customer_id:  # the customer is the suggestion's
            raise AppError("validation_error", "不能修改客户：CRM 变更只能写入该建议所属的客户。")
        change = clean_change({"op": op, "fields": {**base, **given}}, row.customer_id)
        if change is None:
            raise AppError("validation_error", "修改后的 CRM 变更不合法（op 或字段有误）。")
        try:
            change = replace(change, fields=validate_change(change.op, change.fields))
        except InvalidChange as exc:
            raise AppError("validation_error", str(exc)) from None
        out["proposed_change"] = _change_json(change)
    elif "title" in out and current.get("op") == "create_task":
        fields = dict(current.get("fields") or {})
        if fields.get("title") == row.title:
            out["proposed_change"] = {"op": "create_task", "fields": {**fields, "title": out["title"]}}
    return out


class Suggester:
    """Plans suggestions for a customer as of a date and keeps the suggestion log."""

    def __init__(
        self,
        *,
        engine: Engine,
        users: UserDirectory,
        crm: CRM,
        kb: Callable[[], KnowledgeBase] | None,
        llm: ChatModel | None,
        rules: RuleStore | None = None,
        on_failed: Callable[[dict[str, Any]], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        self.engine = engine
        self.on_dropped = on_dropped  # every citation the validator drops is counted (metrics)
        self.on_failed = on_failed  # a confirmed write that failed for good: tell the rep
        self.users = users
        self.crm = crm
        self._kb = kb
        self.llm = llm
        self.rules = rules or RuleStore(None)
        self.store = SuggestionStore(engine)
        self._passage_cache: dict[Any, Any] = {}

    def kb(self) -> KnowledgeBase | None:
        return self._kb() if self._kb is not None else None

    def facts(self, snapshot: CustomerSnapshot, as_of: date, kb: KnowledgeBase | None = None) -> Facts:
        return customer_facts(
            snapshot, load_memos(self.engine, snapshot.id), as_of, competitors=competitor_names(kb)
        )

    def plan(
        self, snapshot: CustomerSnapshot, as_of: date, *, teams: set[str] | None, use_llm: bool = True
    ) -> PlanResult:
        """Suggestions for ``snapshot`` as of ``as_of``, citing only what ``teams`` may see. Not stored."""
        kb = self.kb()
        ruleset = self.rules.load()
        facts = self.facts(snapshot, as_of, kb)
        triggers = evaluate(ruleset, facts)
        finder = PassageFinder(kb, self._passage_cache) if kb is not None else None
        ev = gather(facts, triggers, ruleset, finder=finder, teams=teams)
        result = plan_llm(ev, self.llm) if use_llm and self.llm is not None else plan_offline(ev)
        if result.dropped_citations and self.on_dropped is not None:
            self.on_dropped(result.dropped_citations)
        return result

    def plan_for_owner(self, customer_id: str, as_of: date, *, use_llm: bool = True) -> PlanResult:
        """As the customer's owner would see it (CLI and eval: no logged-in user)."""
        snapshot = self.crm.get_customer(customer_id)
        if snapshot is None:
            raise AppError("customer_not_found", f"客户 {customer_id} 不存在。")
        owner = self.users.get(snapshot.owner_user_id) if snapshot.owner_user_id else None
        teams = self.users.visible_teams(owner) if owner else set()
        return self.plan(snapshot, as_of, teams=teams, use_llm=use_llm)

    def for_customer(self, user: User, customer_id: str, *, as_of: str | date | None = None, store: bool = True,
                     channel: str | None = None) -> PlanResult:  # fmt: skip
        snapshot = customer_for(user, customer_id, crm=self.crm, users=self.users)  # 404 / 403 first
        result = self.plan(snapshot, parse_as_of(as_of), teams=self.users.visible_teams(user))
        if store:
            result.suggestions = self.store.upsert(user.id, result.suggestions)
            self.store.mark_shown(user.id, [s.id for s in result.suggestions], channel=channel)
        return result

    def digest(self, user: User, *, as_of: str | date | None = None, limit: int = 10) -> list[dict[str, Any]]:
        """Top suggestions across the customers ``user`` may see (the daily digest)."""
        rows = []
        for c in customers_for(user, crm=self.crm, users=self.users):
            for s in self.for_customer(user, c.id, as_of=as_of, channel="digest").suggestions:
                rows.append({"customer_name": short_name(c.name), **s.to_json()})
        rows.sort(key=lambda r: r["confidence"], reverse=True)
        return rows[:limit]

    def resolver(self, as_of: date) -> SourceResolver:
        kb = self.kb()
        return SourceResolver(crm=self.crm, engine=self.engine, kb=(lambda: kb) if kb is not None else None,
                              facts_for=lambda snap: self.facts(snap, as_of, kb))  # fmt: skip

    def apply(
        self,
        user: User,
        suggestion_id: str,
        *,
        fields: dict[str, Any] | None = None,
        channel: str | None = None,
    ) -> dict[str, Any]:
        """Perform the suggestion's proposed change in the CRM (idempotent by suggestion and op).

        ``fields`` edits the proposed fields and confirms in one step (recorded as an ``edited``
        event). Whatever the rep edited, before or here, is what is written, and the audit entry
        keeps the original proposal next to the edit. Permission is checked before anything is
        written: a customer the rep may not see → 403 and nothing recorded.
        """
        row = self.store.get(suggestion_id)
        if row is None or row.user_id != user.id:
            raise AppError("not_found", "建议不存在。")
        # The rep's own suggestion: a customer they may no longer see is a 403, not a hidden 404.
        snapshot = customer_for(user, row.customer_id, crm=self.crm, users=self.users, hide=False)
        if row.status == "dismissed":
            raise AppError("conflict", "该建议已忽略，不能执行。", status=409)
        if not row.proposed_change:
            raise AppError("validation_error", "该建议没有可执行的 CRM 变更。")
        if fields is not None:
            wanted = _edit_values(row, {"proposed_change": {"fields": fields}})["proposed_change"]
            _check_change(wanted)
            self._check_people(user, snapshot, wanted)
            if wanted != row.proposed_change:
                self.store.feedback(user.id, suggestion_id, "edit", comment=None,
                                    edited={"proposed_change": wanted}, channel=channel)  # fmt: skip
                row = self.store.get(suggestion_id)
        change = row.proposed_change
        _check_change(change)
        self._check_people(user, snapshot, change)
        change = {
            "op": change["op"],
            "fields": {**(change.get("fields") or {}), "customer_id": row.customer_id},
        }
        history = self.store.edit_history(suggestion_id)
        audit_detail: dict[str, Any] = {"suggestion_id": suggestion_id}
        if history is not None:
            audit_detail |= {"original": history["original"], "edited": change, "edits": history["edits"],
                             "edited_at": history["edited_at"]}  # fmt: skip

        def mark_applied(conn: Connection) -> None:
            # Same transaction as the audit entry and the outbox row: re-check ownership and status.
            cur = conn.execute(
                select(t.suggestions.c.status, t.suggestions.c.user_id).where(
                    t.suggestions.c.id == suggestion_id
                )
            ).first()
            if cur is None or cur.user_id != user.id or cur.status == "dismissed":
                raise AppError("conflict", "该建议状态已变化，未执行。", status=409)
            conn.execute(
                update(t.suggestions)
                .where(t.suggestions.c.id == suggestion_id)
                .values(status="applied", updated_at=datetime.now(UTC))
            )
            self.store._event(conn, suggestion_id, user.id, "applied", detail={"op": change["op"]})

        try:
            result = apply_change(
                self.engine, self.crm, user_id=user.id, change=change,
                evidence_ids=[c["ref"] for c in row.citations or []], key=f"{suggestion_id}:{change['op']}",
                in_transaction=mark_applied, on_failed=self.on_failed, audit_detail=audit_detail,
            )  # fmt: skip
        except ValueError as exc:
            raise AppError("validation_error", str(exc)) from exc
        fresh = self.store.get(suggestion_id)
        return {"suggestion": _row_to_suggestion(fresh).to_json(), "result": result.to_json()}

    def _check_people(self, user: User, snapshot: CustomerSnapshot, change: dict[str, Any]) -> None:
        """A task's owner (a visit's or note's author) is the customer's owner or in ``user``'s scope."""
        try:
            check_people(change["op"], change.get("fields") or {}, customer_owner=snapshot.owner_user_id,
                         allowed=self.users.visible_owner_ids(user), exists=self.users.get)  # fmt: skip
        except InvalidChange as exc:
            raise AppError("validation_error", str(exc)) from None


def _check_change(change: dict[str, Any] | None) -> None:
    if not change:
        raise AppError("validation_error", "该建议没有可执行的 CRM 变更。")
    if change.get("op") == "update_stage" and (change.get("fields") or {}).get("stage") in ("赢单", "输单"):
        raise AppError("forbidden", "赢单/输单须由销售在 CRM 中依据合同等实际凭证手动变更。")


def suggester_for(services: Any) -> Suggester:
    """The one Suggester of a ``Services`` (built lazily, rules in ``$COPILOT_HOME/rules.yaml``)."""
    return services._once(
        "_suggester",
        lambda: Suggester(
            engine=services.engine,
            users=services.users,
            crm=services.crm,
            kb=lambda: services.kb,
            llm=services.llm,
            rules=RuleStore(services.settings.home / "rules.yaml"),
            on_failed=failure_notifier(services),
            on_dropped=services.metrics.citations_dropped.inc,
        ),
    )
