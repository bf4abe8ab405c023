"""A customer's facts as of a date (records dated after it are ignored), and where things were said.

``customer_facts`` turns a CRM snapshot and memos into ``Facts``; ``find_mentions``, ``objections_in``
and ``competitors_in`` find keywords and competitors in the latest memo and visit notes. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from connectors.crm.base import CustomerSnapshot, Opportunity, Task, Visit

# -- facts as of a date ---------------------------------------------------------------------------


def parse_day(value: str | None) -> date | None:
    """``2026-09-29`` / ``2026-09-29T11:20:00+08:00`` → date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _month_index(month: str) -> int | None:
    m = re.fullmatch(r"(\d{4})-(\d{1,2})", (month or "").strip())
    return int(m.group(1)) * 12 + int(m.group(2)) - 1 if m else None


@dataclass(frozen=True, slots=True)
class Segment:
    start: float
    end: float
    text: str


@dataclass(frozen=True, slots=True)
class MemoView:
    id: str
    recorded_on: date | None
    transcript: str
    segments: tuple[Segment, ...] = ()
    visit_record: dict[str, Any] | None = None


def _opp_as_of(opp: Opportunity, as_of: date) -> Opportunity | None:
    created = parse_day(opp.created)
    if created and created > as_of:
        return None
    history = tuple(h for h in opp.stage_history if (parse_day(h.entered) or as_of) <= as_of)
    if opp.stage_history:
        if not history:
            return None
        last = history[-1]
        return replace(opp, stage=last.stage, stage_entered=last.entered, stage_history=history)
    entered = parse_day(opp.stage_entered)
    return None if entered and entered > as_of else opp


def _task_as_of(task: Task, as_of: date) -> Task | None:
    created = parse_day(task.created)
    if created and created > as_of:
        return None
    done = parse_day(task.completed)
    if task.status == "done" and (done is None or done <= as_of):
        return task
    return replace(task, status="open", completed=None)


def snapshot_as_of(snapshot: CustomerSnapshot, as_of: date) -> CustomerSnapshot:
    """The customer as the CRM knew it on ``as_of``: later visits, tasks, stages and purchases are dropped.

    Purchases keep complete months only (months before the one ``as_of`` falls in).
    """
    cutoff = as_of.year * 12 + as_of.month - 1
    return replace(
        snapshot,
        opportunities=tuple(o for o in (_opp_as_of(o, as_of) for o in snapshot.opportunities) if o),
        visits=tuple(v for v in snapshot.visits if (parse_day(v.date) or date.max) <= as_of),
        purchases=tuple(p for p in snapshot.purchases if (_month_index(p.month) or cutoff) < cutoff),
        tasks=tuple(t for t in (_task_as_of(t, as_of) for t in snapshot.tasks) if t),
    )


@dataclass(frozen=True, slots=True)
class Mention:
    """Where a keyword or a competitor was found: a memo segment, a visit's notes or an opportunity."""

    kind: str  # memo | visit | opportunity
    ref: str  # memo id | visit date | opportunity id
    index: int | None  # segment index (memo) or visit index
    keyword: str


@dataclass(frozen=True, slots=True)
class Commitment:
    """A commitment or next step said in a memo or written in a visit note (``kind`` memo | visit)."""

    kind: str
    ref: str  # memo id | visit date
    index: int | None  # memo segment | visit index
    action: str
    due: date | None
    recorded: date | None


@dataclass(frozen=True, slots=True)
class Facts:
    as_of: date
    customer: CustomerSnapshot  # as of ``as_of``
    memos: tuple[MemoView, ...]  # recorded on or before ``as_of``, newest first
    competitors_known: tuple[str, ...] = ()
    commitments: tuple[Commitment, ...] = ()  # recorded on or before ``as_of``
    team_id: str | None = None  # the owner's team: a team's rules fire only for its customers

    @property
    def latest_visit(self) -> Visit | None:
        dated = [v for v in self.customer.visits if parse_day(v.date)]
        return max(dated, key=lambda v: v.date) if dated else None

    @property
    def days_since_visit(self) -> int | None:
        v = self.latest_visit
        return (self.as_of - parse_day(v.date)).days if v else None  # type: ignore[operator]

    @property
    def latest_memo(self) -> MemoView | None:
        return self.memos[0] if self.memos else None

    def days_in_stage(self, opp: Opportunity) -> int | None:
        entered = parse_day(opp.stage_entered)
        return (self.as_of - entered).days if entered else None

    def purchase_changes(self) -> list[tuple[str, float, float | None]]:
        """``(month, amount, % change vs the previous calendar month or None)``, oldest first."""
        rows = sorted(
            (
                (_month_index(p.month), p)
                for p in self.customer.purchases
                if _month_index(p.month) is not None
            ),
            key=lambda r: r[0],
        )
        out: list[tuple[str, float, float | None]] = []
        prev: tuple[int, float] | None = None
        for idx, p in rows:
            change = None
            if prev and prev[0] == idx - 1 and prev[1] > 0:
                change = (p.amount - prev[1]) / prev[1] * 100
            out.append((p.month, p.amount, change))
            prev = (idx, p.amount)  # type: ignore[assignment]
        return out

    def overdue_tasks(self) -> list[tuple[Task, int]]:
        out = []
        for t in self.customer.tasks:
            due = parse_day(t.due)
            if t.status != "done" and due and due < self.as_of:
                out.append((t, (self.as_of - due).days))
        return out


def customer_facts(
    snapshot: CustomerSnapshot,
    memos: Iterable[MemoView],
    as_of: date,
    *,
    competitors: Sequence[str] = (),
    commitments: Iterable[Commitment] = (),
    team_id: str | None = None,
) -> Facts:
    view = snapshot_as_of(snapshot, as_of)
    kept = sorted(
        (m for m in memos if m.recorded_on is None or m.recorded_on <= as_of),
        key=lambda m: m.recorded_on or date.min,
        reverse=True,
    )
    known = list(dict.fromkeys([*(c for o in view.opportunities for c in o.competitors), *competitors]))
    return Facts(
        as_of=as_of, customer=view, memos=tuple(kept), competitors_known=tuple(c for c in known if c),
        commitments=tuple(c for c in commitments if c.recorded is None or c.recorded <= as_of),
        team_id=team_id,
    )  # fmt: skip


# -- commitments ----------------------------------------------------------------------------------

COMMITMENT_LOOKBACK_DAYS = 45


def _bigrams(text: str) -> set[str]:
    text = re.sub(r"[\W_]+", "", text)
    return {text[i : i + 2] for i in range(len(text) - 1)}


def similar_titles(a: str, b: str) -> float:
    """Share of the shorter text's character bigrams found in the other (0–1)."""
    ga, gb = _bigrams(a), _bigrams(b)
    if not ga or not gb:
        return 0.0
    return len(ga & gb) / min(len(ga), len(gb))


def _done_in_crm(c: Commitment, facts: Facts) -> bool:
    """A CRM record shows it was done: a quote commitment and a quote sent on or after it was made."""
    if "报价" not in c.action or c.recorded is None:
        return False
    for opp in facts.customer.opportunities:
        sent = parse_day(str(opp.custom.get("quote_sent_date") or "")) or None
        if sent is not None and c.recorded <= sent <= facts.as_of:
            return True
    return False


def open_commitments(facts: Facts, lookback_days: int = COMMITMENT_LOOKBACK_DAYS) -> list[Commitment]:
    """Commitments made within ``lookback_days`` that no CRM task covers (open or done: the task is the
    follow-up) and no CRM record shows done. De-duplicated by action."""
    since = facts.as_of - timedelta(days=lookback_days)
    out: list[Commitment] = []
    for c in facts.commitments:
        if c.recorded is not None and c.recorded < since:
            continue
        covered = any(
            similar_titles(c.action, t.title) >= 0.5
            or (c.due is not None and parse_day(t.due) == c.due and similar_titles(c.action, t.title) >= 0.3)
            for t in facts.customer.tasks
        )
        if covered or _done_in_crm(c, facts) or any(similar_titles(c.action, o.action) >= 0.8 for o in out):
            continue
        out.append(c)
    return out


# -- detection in memos and notes -----------------------------------------------------------------

_NAME_TAIL = re.compile(r"(科技|物联|智能|信息|软件|网络|技术|医疗|财务|器械|电子|集团|股份|有限公司|公司)+$")


def competitor_aliases(name: str) -> tuple[str, ...]:
    """``智云科技`` → (``智云科技``, ``智云``): how people say it in a visit."""
    short = _NAME_TAIL.sub("", name)
    return (name, short) if short != name and len(short) >= 2 else (name,)


def _latest_texts(facts: Facts, lookback_days: int | None) -> list[tuple[Mention, str]]:
    """The latest memo's segments and the latest visit's notes (or every visit within ``lookback_days``)."""
    texts: list[tuple[Mention, str]] = []
    memo = facts.latest_memo
    if memo is not None:
        if memo.segments:
            texts += [(Mention("memo", memo.id, i, ""), s.text) for i, s in enumerate(memo.segments)]
        elif memo.transcript:
            texts.append((Mention("memo", memo.id, None, ""), memo.transcript))
    visits = list(facts.customer.visits)
    if lookback_days is None:
        latest = facts.latest_visit
        visits = [latest] if latest else []
    else:
        since = facts.as_of - timedelta(days=lookback_days)
        visits = [v for v in visits if (parse_day(v.date) or date.min) >= since]
    for v in visits:
        idx = facts.customer.visits.index(v)
        texts.append((Mention("visit", v.date, idx, ""), v.notes))
    return texts


def find_mentions(
    facts: Facts, keywords: Sequence[str], *, lookback_days: int | None = None
) -> list[Mention]:
    out: list[Mention] = []
    for where, text in _latest_texts(facts, lookback_days):
        for kw in keywords:
            if kw and kw in text:
                out.append(replace(where, keyword=kw))
                break
    return out


def objections_in(facts: Facts, keywords: dict[str, tuple[str, ...]]) -> dict[str, list[Mention]]:
    """Objection type → where it was raised (latest memo, its extracted visit record, latest visit)."""
    found: dict[str, list[Mention]] = {}
    for kind, words in keywords.items():
        mentions = find_mentions(facts, words)
        if mentions:
            found[kind] = mentions
    memo = facts.latest_memo
    record = memo.visit_record if memo else None
    for item in (record or {}).get("objections") or []:
        if isinstance(item, dict) and item.get("type") and memo is not None:
            kind = str(item["type"])
            if kind not in found:
                text = str(item.get("text") or "")
                idx = next((i for i, s in enumerate(memo.segments) if text and text[:8] in s.text), None)
                found[kind] = [Mention("memo", memo.id, idx, text[:8] or kind)]
    return found


def competitors_in(facts: Facts, lookback_days: int) -> dict[str, list[Mention]]:
    """Competitor → mentions in the latest memo, visits within ``lookback_days`` and open opportunities."""
    found: dict[str, list[Mention]] = {}
    texts = _latest_texts(facts, lookback_days)
    for name in facts.competitors_known:
        aliases = competitor_aliases(name)
        for where, text in texts:
            alias = next((a for a in aliases if a in text), None)
            if alias:
                found.setdefault(name, []).append(replace(where, keyword=alias))
    memo = facts.latest_memo
    for name in ((memo.visit_record or {}).get("competitors") or []) if memo else []:
        if isinstance(name, str) and name and name not in found:
            idx = next((i for i, s in enumerate(memo.segments) if name in s.text), None)
            found[name] = [Mention("memo", memo.id, idx, name)]
    for opp in facts.customer.opportunities:
        if opp.stage in ("赢单", "输单"):
            continue
        for name in opp.competitors:
            found.setdefault(name, []).append(Mention("opportunity", opp.id, None, name))
    return found
