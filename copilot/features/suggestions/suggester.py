"""Next-best-action suggestions for a customer: plan (offline or LLM), store with dedup, feedback, apply.

``Suggester.for_customer(user, customer_id)`` is what the API, the CLI and the chat call. Asking again
returns the open suggestions, refreshed; the same suggestion (same customer, action type and evidence)
is stored once per user, so adoption counts stay honest (DESIGN §7). Events: proposed → shown →
accepted / edited / dismissed → applied.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, select, update

from connectors.crm.base import CRM, CustomerSnapshot
from copilot.agent.citations import short_name
from copilot.agent.competitors import competitor_names
from copilot.agent.evidence import MemoSource, PassageFinder, SourceResolver
from copilot.agent.facts import Facts, customer_facts
from copilot.agent.llm_planner import plan_llm
from copilot.agent.offline_planner import PlanResult, plan_offline
from copilot.agent.rules import RuleStore
from copilot.agent.triggers import evaluate, gather
from copilot.domain import User
from copilot.errors import AppError
from copilot.features.memos.repo import MemoRepo
from copilot.features.suggestions.commitments import CommitmentFinder
from copilot.features.suggestions.store import SuggestionStore, edit_values, row_to_suggestion
from copilot.features.writeback.apply import apply_change
from copilot.features.writeback.change_fields import (
    MAX_YEAR,
    MIN_YEAR,
    InvalidChange,
    check_people,
)
from copilot.identity.access import customer_for, customers_for
from copilot.identity.users import UserDirectory
from copilot.infra.llm.chat_model import ChatModel
from copilot.storage import tables as t

if TYPE_CHECKING:
    from knowledge_base.base import KnowledgeBase

logger = logging.getLogger(__name__)


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
        memos: MemoSource | None = None,
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
        self.memos = memos or MemoRepo(engine)  # where the agent reads the customer's finished memos
        self.store = SuggestionStore(engine)
        self._passage_cache: dict[Any, Any] = {}
        self.commitments = CommitmentFinder()

    def kb(self) -> KnowledgeBase | None:
        return self._kb() if self._kb is not None else None

    def facts(self, snapshot: CustomerSnapshot, as_of: date, kb: KnowledgeBase | None = None) -> Facts:
        """The customer's facts, with the owner's team (which team-scoped rules apply to the customer)."""
        memos, commitments = self.commitments.enrich(snapshot, self.memos.done_memos(snapshot.id))
        owner = self.users.get(snapshot.owner_user_id) if snapshot.owner_user_id else None
        return customer_facts(snapshot, memos, as_of, competitors=competitor_names(kb), commitments=commitments,
                              team_id=owner.team_id if owner else None)  # fmt: skip

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

    def generate_for_owner(self, customer_id: str, as_of: str | None = None) -> int:
        """Plan one customer's suggestions as its owner would see them and log the new ones as proposed
        (not shown: nobody has seen them yet), so that the digest and the rep's next request find them
        ready (the ``generate_suggestions`` job). Idempotent: a suggestion already logged is not logged
        again. How many suggestions the plan has; 0 for a customer that no longer exists."""
        snapshot = self.crm.get_customer(customer_id)
        if snapshot is None:  # deleted since the job was queued: nothing to do, and nothing to retry
            logger.info("suggestions job: customer %s not found", customer_id)
            return 0
        result = self.plan_for_owner(customer_id, parse_as_of(as_of))
        if snapshot.owner_user_id and result.suggestions:
            self.store.upsert(snapshot.owner_user_id, result.suggestions)
        logger.info("suggestions job: customer %s, %d suggestions", customer_id, len(result.suggestions))
        return len(result.suggestions)

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
        return SourceResolver(crm=self.crm, memos=self.memos, kb=(lambda: kb) if kb is not None else None,
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
            wanted = edit_values(row, {"proposed_change": {"fields": fields}})["proposed_change"]
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
        return {"suggestion": row_to_suggestion(fresh).to_json(), "result": result.to_json()}

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


def suggestions_citing_memo(suggester: Suggester, memo_id: str, customer_id: str | None,
                            user: User | None) -> list[dict[str, Any]]:  # fmt: skip
    """The rep's suggestions for the memo's customer that cite this memo (shown with the memo)."""
    if user is None or not customer_id:
        return []
    result = suggester.for_customer(user, customer_id, channel="memo")
    return [
        s.to_json()
        for s in result.suggestions
        if any(c.kind == "memo" and c.ref == memo_id for c in s.citations)
    ]
