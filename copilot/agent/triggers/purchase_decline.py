"""Monthly purchases down month on month for N months in a row, each by more than a percentage."""

from __future__ import annotations

from copilot.agent.drafting import Draft, draft_context
from copilot.agent.evidence import EvidenceSet
from copilot.agent.facts import Facts
from copilot.agent.ruleset import Rule, RuleSet, Trigger


def evaluate(rule: Rule, facts: Facts, ruleset: RuleSet) -> list[Trigger]:
    months, drop = int(rule.param("months", 3)), float(rule.param("drop_pct", 15))
    tail = facts.purchase_changes()[-months:]
    if len(tail) < months or any(c is None or c > -drop for _m, _a, c in tail):
        return []
    return [
        Trigger(rule, tail[-1][0], {"months": [m for m, _a, _c in tail], "changes": [c for *_x, c in tail]})
    ]


def draft(trig: Trigger, ev: EvidenceSet) -> Draft | None:
    cx, rule, data = draft_context(trig, ev), trig.rule, trig.data
    b = cx.b
    eid = ev.crm_id("purchases", next((loc for f, loc in ev.crm if f == "purchases"), ""))
    months = data["months"]
    pieces = (ev.parts.get(eid, {}).get("pieces") or "").split("；")
    tail = "；".join(p for p in pieces if p.split(" ")[0] in months)
    drops = "、".join(f"{c:+.1f}%" for c in data["changes"])
    return Draft(
        rule.action_type,
        f"关怀任务：{b.short} 月度采购额连续 {len(months)} 个月环比下降",
        f"{months[0]} 至 {months[-1]} 采购额环比变化 {drops}。建议安排关怀拜访了解原因（门店调整、预算变化、竞品替代等）。{cx.rule_note}",
        0.8 + cx.bonus,
        (*b.claim(eid, tail or None), *cx.reason),
        b.task(f"关怀拜访：了解 {b.short} 采购额下降原因", cx.due_days),
        rule.id,
    )
