"""An open opportunity that has stayed in one stage longer than N days."""

from __future__ import annotations

from copilot.agent.drafting import Draft, draft_context
from copilot.agent.evidence import EvidenceSet
from copilot.agent.facts import Facts
from copilot.agent.ruleset import Rule, RuleSet, Trigger


def evaluate(rule: Rule, facts: Facts, ruleset: RuleSet) -> list[Trigger]:
    limit, closed = int(rule.param("days", 45)), set(rule.param("closed_stages") or ("赢单", "输单"))
    out = []
    for opp in facts.customer.opportunities:
        days = facts.days_in_stage(opp)
        if opp.stage not in closed and days is not None and days > limit:
            out.append(Trigger(rule, opp.id, {"opportunity": opp, "days": days, "limit": limit}))
    return out


def draft(trig: Trigger, ev: EvidenceSet) -> Draft | None:
    cx, rule, data = draft_context(trig, ev), trig.rule, trig.data
    b, opp = cx.b, data["opportunity"]
    return Draft(
        rule.action_type,
        f"升级推进：商机「{opp.name}」在「{opp.stage}」阶段已停留 {data['days']} 天",
        f"该商机 {opp.stage_entered} 进入「{opp.stage}」，已超过 {data['limit']} 天未推进。建议升级至区域经理或请售前专家支持，共同制定推进计划。{cx.rule_note}",
        0.75 + cx.bonus,
        (*b.part(ev.crm_id("opportunities", opp.id), "stage"), *cx.reason),
        b.task(f"升级：与区域经理制定「{opp.name}」推进计划", cx.due_days),
        rule.id,
    )
