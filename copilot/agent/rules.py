"""Manager-configurable follow-up rules, evaluated over one customer's facts as of a date. Pure.

The rules live in YAML (``copilot/agent/rules.yaml`` by default, ``$COPILOT_HOME/rules.yaml`` once
a manager edits them): each names a ``kind`` implemented here, its parameters, the action it
suggests and a Chinese description. ``customer_facts`` turns a CRM snapshot and memos into facts
as of a date (records dated after it are ignored); ``evaluate`` returns the rules that fire.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from connectors.crm.base import CustomerSnapshot, Opportunity, Task, Visit
from copilot.agent.rules_schema import RulesError, check_schema, load_yaml
from copilot.domain import ACTION_TYPES

RULE_KINDS = (
    "visit_cadence",
    "purchase_decline",
    "stage_stall",
    "overdue_task",
    "objection",
    "competitor",
    "discount_request",
)


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    kind: str
    action_type: str
    description: str
    enabled: bool = True
    reason_query: str = ""
    reason_keywords: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)

    def param(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    objection_keywords: dict[str, tuple[str, ...]]
    discount_keywords: tuple[str, ...]

    def enabled(self) -> list[Rule]:
        return [r for r in self.rules if r.enabled]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "objection_keywords": {k: list(v) for k, v in self.objection_keywords.items()},
            "discount_keywords": list(self.discount_keywords),
            "rules": [
                {
                    "id": r.id,
                    "kind": r.kind,
                    "enabled": r.enabled,
                    "description": r.description,
                    "action_type": r.action_type,
                    "reason_query": r.reason_query,
                    "reason_keywords": list(r.reason_keywords),
                    "params": r.params,
                }
                for r in self.rules
            ],
        }


def _strs(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise RulesError(f"{where} 必须是字符串列表")
    return tuple(str(v) for v in value)


def parse_rules(data: Any) -> RuleSet:
    """Validate a rules document (parsed YAML/JSON); RulesError names the field to fix."""
    check_schema(data)  # types and sizes first (rules_schema.py)
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise RulesError("规则文件必须是对象，且包含 rules 列表")
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, raw in enumerate(data["rules"], start=1):
        if not isinstance(raw, dict):
            raise RulesError(f"第 {i} 条规则必须是对象")
        rid = str(raw.get("id") or "").strip()
        kind = str(raw.get("kind") or "").strip()
        action = str(raw.get("action_type") or "").strip()
        if not rid or rid in seen:
            raise RulesError(f"第 {i} 条规则缺少 id 或 id 重复")
        if kind not in RULE_KINDS:
            raise RulesError(f"规则 {rid} 的 kind={kind!r} 不支持；可选：{', '.join(RULE_KINDS)}")
        if action not in ACTION_TYPES:
            raise RulesError(f"规则 {rid} 的 action_type={action!r} 不支持；可选：{', '.join(ACTION_TYPES)}")
        params = raw.get("params") or {}
        if not isinstance(params, dict):
            raise RulesError(f"规则 {rid} 的 params 必须是对象")
        seen.add(rid)
        rules.append(
            Rule(
                id=rid,
                kind=kind,
                action_type=action,
                description=str(raw.get("description") or rid),
                enabled=bool(raw.get("enabled", True)),
                reason_query=str(raw.get("reason_query") or ""),
                reason_keywords=_strs(raw.get("reason_keywords"), f"规则 {rid} 的 reason_keywords"),
                params=dict(params),
            )
        )
    objections = data.get("objection_keywords") or {}
    if not isinstance(objections, dict):
        raise RulesError("objection_keywords 必须是“异议类型: [关键词]”的对象")
    return RuleSet(
        rules=tuple(rules),
        objection_keywords={str(k): _strs(v, f"objection_keywords.{k}") for k, v in objections.items()},
        discount_keywords=_strs(data.get("discount_keywords"), "discount_keywords"),
    )


def default_rules_text() -> str:
    return resources.files("copilot.agent").joinpath("rules.yaml").read_text(encoding="utf-8")


def load_rules_text(text: str) -> RuleSet:
    """Parse rules YAML: bounded, no aliases or anchors, schema-checked (rules_schema.py)."""
    return parse_rules(load_yaml(text))


class RuleStore:
    """Rules from ``path`` when it exists, else the packaged defaults; ``save`` validates first."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._cache: tuple[float, RuleSet] | None = None

    def load(self) -> RuleSet:
        if self.path is None or not self.path.exists():
            if self._cache is None or self._cache[0] != -1.0:
                self._cache = (-1.0, load_rules_text(default_rules_text()))
            return self._cache[1]
        mtime = self.path.stat().st_mtime
        if self._cache is None or self._cache[0] != mtime:
            self._cache = (mtime, load_rules_text(self.path.read_text(encoding="utf-8")))
        return self._cache[1]

    def text(self) -> str:
        if self.path is not None and self.path.exists():
            return self.path.read_text(encoding="utf-8")
        return default_rules_text()

    def save(self, data: dict[str, Any] | str) -> RuleSet:
        if self.path is None:
            raise RulesError("未配置规则文件位置，无法保存")
        if isinstance(data, str):
            ruleset, text = load_rules_text(data), data
        else:
            ruleset = parse_rules(data)
            text = yaml.safe_dump(ruleset.to_json(), allow_unicode=True, sort_keys=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(self.path)
        self._cache = None
        return ruleset


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
class Facts:
    as_of: date
    customer: CustomerSnapshot  # as of ``as_of``
    memos: tuple[MemoView, ...]  # recorded on or before ``as_of``, newest first
    competitors_known: tuple[str, ...] = ()

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
    snapshot: CustomerSnapshot, memos: Iterable[MemoView], as_of: date, *, competitors: Sequence[str] = ()
) -> Facts:
    view = snapshot_as_of(snapshot, as_of)
    kept = sorted(
        (m for m in memos if m.recorded_on is None or m.recorded_on <= as_of),
        key=lambda m: m.recorded_on or date.min,
        reverse=True,
    )
    known = list(dict.fromkeys([*(c for o in view.opportunities for c in o.competitors), *competitors]))
    return Facts(
        as_of=as_of, customer=view, memos=tuple(kept), competitors_known=tuple(c for c in known if c)
    )


# -- detection in memos and notes -----------------------------------------------------------------

_NAME_TAIL = re.compile(r"(科技|物联|智能|信息|软件|网络|技术|集团|股份|有限公司|公司)+$")


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


# -- evaluation ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trigger:
    """A rule that fired for this customer; ``key`` tells firings of one rule apart (opp id, competitor…)."""

    rule: Rule
    key: str
    data: dict[str, Any] = field(default_factory=dict)


def _visit_cadence(rule: Rule, facts: Facts) -> list[Trigger]:
    cadence = {str(k).upper(): int(v) for k, v in (rule.param("cadence_days") or {}).items()}
    tier = (facts.customer.tier or "").upper()
    if tier not in cadence:
        return []
    days = facts.days_since_visit
    if days is None or days > cadence[tier]:
        return [Trigger(rule, tier, {"tier": tier, "cadence": cadence[tier], "days": days})]
    return []


def _purchase_decline(rule: Rule, facts: Facts) -> list[Trigger]:
    months, drop = int(rule.param("months", 3)), float(rule.param("drop_pct", 15))
    changes = facts.purchase_changes()
    tail = changes[-months:]
    if len(tail) < months or any(c is None or c > -drop for _m, _a, c in tail):
        return []
    return [
        Trigger(rule, tail[-1][0], {"months": [m for m, _a, _c in tail], "changes": [c for *_x, c in tail]})
    ]


def _stage_stall(rule: Rule, facts: Facts) -> list[Trigger]:
    limit, closed = int(rule.param("days", 45)), set(rule.param("closed_stages") or ("赢单", "输单"))
    out = []
    for opp in facts.customer.opportunities:
        days = facts.days_in_stage(opp)
        if opp.stage not in closed and days is not None and days > limit:
            out.append(Trigger(rule, opp.id, {"opportunity": opp, "days": days, "limit": limit}))
    return out


def _overdue(rule: Rule, facts: Facts) -> list[Trigger]:
    words = tuple(rule.param("quote_keywords") or ())
    out = []
    for task, days in facts.overdue_tasks():
        is_quote = any(w in task.title for w in words)
        action = rule.action_type if is_quote or rule.action_type != "follow_up_quote" else "other"
        out.append(Trigger(rule, task.id, {"task": task, "days": days, "action_type": action}))
    return out


def evaluate(ruleset: RuleSet, facts: Facts) -> list[Trigger]:
    """Every enabled rule that fires for ``facts``, in rule order."""
    out: list[Trigger] = []
    objections: dict[str, list[Mention]] | None = None
    for rule in ruleset.enabled():
        if rule.kind == "visit_cadence":
            out += _visit_cadence(rule, facts)
        elif rule.kind == "purchase_decline":
            out += _purchase_decline(rule, facts)
        elif rule.kind == "stage_stall":
            out += _stage_stall(rule, facts)
        elif rule.kind == "overdue_task":
            out += _overdue(rule, facts)
        elif rule.kind == "objection":
            if objections is None:
                objections = objections_in(facts, ruleset.objection_keywords)
            kind = str(rule.param("objection", ""))
            if kind in objections:
                out.append(Trigger(rule, kind, {"objection": kind, "mentions": objections[kind]}))
        elif rule.kind == "competitor":
            for name, mentions in competitors_in(facts, int(rule.param("lookback_days", 90))).items():
                out.append(Trigger(rule, name, {"competitor": name, "mentions": mentions}))
        elif rule.kind == "discount_request":
            mentions = find_mentions(facts, ruleset.discount_keywords)
            if mentions and facts.customer.tier:
                out.append(
                    Trigger(rule, facts.customer.tier, {"tier": facts.customer.tier, "mentions": mentions})
                )
    return out
