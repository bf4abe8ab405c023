"""The customer asked for a discount: answer within the current price policy's cap for its tier."""

from __future__ import annotations

from typing import TYPE_CHECKING

from copilot.agent.drafting import Draft, draft_context
from copilot.agent.evidence import EvidenceSet, PassageFinder, discount_cap
from copilot.agent.facts import Facts, find_mentions
from copilot.agent.ruleset import Rule, RuleSet, Trigger

if TYPE_CHECKING:
    from knowledge_base.documents import Hit


def evaluate(rule: Rule, facts: Facts, ruleset: RuleSet) -> list[Trigger]:
    mentions = find_mentions(facts, ruleset.discount_keywords)
    tier = facts.customer.tier
    return [Trigger(rule, tier, {"tier": tier, "mentions": mentions})] if mentions and tier else []


def passages(
    trigger: Trigger, facts: Facts, ruleset: RuleSet, finder: PassageFinder, teams: set[str] | None
) -> dict[str, Hit]:
    rule, tier = trigger.rule, str(trigger.data.get("tier", ""))
    query = str(rule.param("policy_query", "{tier}类客户 折扣上限")).replace("{tier}", tier)
    types = tuple(rule.param("policy_types") or ())
    hits = finder.search(query, teams=teams, as_of=facts.as_of, doc_types=types, k=6)
    hit = next((h for h in hits if discount_cap(h.chunk.text, tier) is not None), None)
    return {"policy": hit} if hit else {}


def draft(trig: Trigger, ev: EvidenceSet) -> Draft | None:
    cx, rule, data = draft_context(trig, ev), trig.rule, trig.data
    b, tier = cx.b, str(data["tier"])
    cap = ev.discount_caps.get(tier)
    policy = b.passage(trig, "policy", (f"{tier}类", f"{tier} 类"))
    limit = (
        f"现行价格政策 {tier} 类客户折扣上限为 {cap:g}%" if cap is not None else "折扣须以现行价格政策为准"
    )
    title = (
        f"按现行价格政策答复折扣诉求（{tier} 类客户上限 {cap:g}%）"
        if cap is not None
        else "按现行价格政策答复折扣诉求"
    )
    return Draft(
        rule.action_type,
        title,
        f"{b.where(data['mentions'])}客户提出折扣要求。{limit}，超出部分须走特批，不得口头承诺。{cx.rule_note}",
        0.7 + (0.05 if policy else 0.0),
        (*b.mentions(data["mentions"], limit=1), *policy, *cx.reason),
        b.task("按现行价格政策准备折扣答复与报价", cx.due_days),
        rule.id,
    )
