"""A competitor named in the latest memo, recent visits or an open opportunity: use its battlecard."""

from __future__ import annotations

from typing import TYPE_CHECKING

from copilot.agent.drafting import Draft, doc_names, draft_context
from copilot.agent.evidence import EvidenceSet, PassageFinder, first_hit
from copilot.agent.facts import Facts, competitor_aliases, competitors_in
from copilot.agent.ruleset import Rule, RuleSet, Trigger

if TYPE_CHECKING:
    from knowledge_base.documents import Hit


def evaluate(rule: Rule, facts: Facts, ruleset: RuleSet) -> list[Trigger]:
    found = competitors_in(facts, int(rule.param("lookback_days", 90)))
    return [
        Trigger(rule, name, {"competitor": name, "mentions": mentions}) for name, mentions in found.items()
    ]


def passages(
    trigger: Trigger, facts: Facts, ruleset: RuleSet, finder: PassageFinder, teams: set[str] | None
) -> dict[str, Hit]:
    rule, name = trigger.rule, str(trigger.data["competitor"])
    aliases = competitor_aliases(name)
    query = str(rule.param("material_query", "{competitor}")).replace("{competitor}", name)
    types = tuple(rule.param("material_types") or ())
    hit = first_hit(finder.search(query, teams=teams, as_of=facts.as_of, doc_types=types, k=6), aliases)
    hit = hit or first_hit(finder.search(query, teams=teams, as_of=facts.as_of, k=6), aliases)
    return {"material": hit} if hit else {}


def draft(trig: Trigger, ev: EvidenceSet) -> Draft | None:
    cx, rule, data = draft_context(trig, ev), trig.rule, trig.data
    b = cx.b
    material = b.passage(trig, "material", (data["competitor"],))
    if not material:
        return None
    doc = doc_names([ev.items[material[0].evidence_id].label])
    return Draft(
        rule.action_type,
        f"竞品应对：{data['competitor']}，使用{doc}",
        f"{b.where(data['mentions'])}出现竞品「{data['competitor']}」。{cx.rule_note}",
        0.7 + cx.bonus,
        (*b.mentions(data["mentions"]), *material, *cx.reason),
        b.task(f"准备{data['competitor']}竞品对比材料（{doc}）", cx.due_days),
        rule.id,
    )
