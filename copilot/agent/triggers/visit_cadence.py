"""A customer not visited within its tier's cadence (A 30 天, B 60 天, C 90 天 by default)."""

from __future__ import annotations

from copilot.agent.drafting import Draft, draft_context
from copilot.agent.evidence import EvidenceSet
from copilot.agent.facts import Facts
from copilot.agent.ruleset import Rule, RuleSet, Trigger


def evaluate(rule: Rule, facts: Facts, ruleset: RuleSet) -> list[Trigger]:
    cadence = {str(k).upper(): int(v) for k, v in (rule.param("cadence_days") or {}).items()}
    tier = (facts.customer.tier or "").upper()
    if tier not in cadence:
        return []
    days = facts.days_since_visit
    if days is None or days > cadence[tier]:
        return [Trigger(rule, tier, {"tier": tier, "cadence": cadence[tier], "days": days})]
    return []


def draft(trig: Trigger, ev: EvidenceSet) -> Draft | None:
    cx, rule, data = draft_context(trig, ev), trig.rule, trig.data
    b = cx.b
    v = b.facts.latest_visit
    fact = f"最近一次拜访是 {v.date}，至今 {data['days']} 天" if v else "CRM 中没有拜访记录"
    return Draft(
        rule.action_type,
        f"安排关怀拜访：{b.short}（{data['tier']} 类客户）已超过 {data['cadence']} 天拜访周期",
        f"{fact}，超过 {data['tier']} 类客户 {data['cadence']} 天的拜访周期。{cx.rule_note}",
        0.8 + cx.bonus,
        (*b.part(ev.crm_id("visits", "latest"), "summary"), *cx.reason),
        b.task(f"关怀拜访：{b.short}", cx.due_days),
        rule.id,
    )
