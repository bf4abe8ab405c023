"""Rule kinds: one module each, registered in ``KINDS``. A kind knows when it fires (``evaluate``),
which knowledge-base passages back it (``passages``, optional) and how its suggestion reads
(``draft``). A new kind is one new module here plus its entry in ``KINDS``.

    triggers = evaluate(ruleset, facts)                    # the rules that fire, in rule order
    ev = gather(facts, triggers, ruleset, finder=…, teams=…)  # CRM, memo and KB evidence with ids
    drafts = [draft_for_trigger(t, ev) for t in triggers]
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from copilot.agent.evidence import (
    MAX_MEMOS,
    EvidenceSet,
    PassageFinder,
    crm_items,
    discount_cap,
    first_hit,
    kb_item,
    memo_items,
)
from copilot.agent.facts import Facts
from copilot.agent.ruleset import Rule, RuleSet, Trigger
from copilot.agent.triggers import (
    commitment,
    competitor,
    condition,
    discount_request,
    objection,
    overdue_task,
    purchase_decline,
    stage_stall,
    visit_cadence,
)

if TYPE_CHECKING:
    from copilot.agent.drafting import Draft
    from knowledge_base.documents import Hit

KINDS: dict[str, ModuleType] = {
    "visit_cadence": visit_cadence,
    "purchase_decline": purchase_decline,
    "stage_stall": stage_stall,
    "overdue_task": overdue_task,
    "objection": objection,
    "competitor": competitor,
    "discount_request": discount_request,
    "commitment": commitment,
    "condition": condition,
}


def fires(rule: Rule, facts: Facts, ruleset: RuleSet) -> list[Trigger]:
    """The rule's firings for this customer; none when it is scoped to another team than the owner's
    (the one place a rule's ``team_id`` is applied: both planners and the managers' preview use it)."""
    kind = KINDS.get(rule.kind)
    if kind is None or not rule.applies_to(facts.team_id):
        return []
    return kind.evaluate(rule, facts, ruleset)


def evaluate(ruleset: RuleSet, facts: Facts) -> list[Trigger]:
    """Every enabled rule that fires for ``facts``, in rule order."""
    return [trigger for rule in ruleset.enabled() for trigger in fires(rule, facts, ruleset)]


def passages_for(
    trigger: Trigger, facts: Facts, ruleset: RuleSet, finder: PassageFinder, teams: set[str] | None
) -> dict[str, Hit]:
    """KB passages a trigger cites: ``reason`` (the rule as written in the rules documents) and the
    kind's own (``material``, ``case``, ``policy``)."""
    rule, out = trigger.rule, {}
    if rule.reason_query:
        hits = finder.search(rule.reason_query, teams=teams, as_of=facts.as_of, doc_types=("rules",), k=4)
        hit = first_hit(hits, rule.reason_keywords)
        if hit:
            out["reason"] = hit
    own = getattr(KINDS.get(rule.kind), "passages", None)
    if own is not None:
        out.update(own(trigger, facts, ruleset, finder, teams))
    return out


def gather(
    facts: Facts, triggers: list[Trigger], ruleset: RuleSet, *, finder: PassageFinder | None,
    teams: set[str] | None,
) -> EvidenceSet:  # fmt: skip
    """The evidence of one plan: every CRM record and recent memo segment, and the triggers' passages."""
    ev = EvidenceSet(facts=facts, triggers=triggers)
    for item in crm_items(facts):
        ev.crm[(item.ref.split(".", 1)[1], item.locator)] = ev.add(item)
    for memo in facts.memos[:MAX_MEMOS]:
        for idx, item in memo_items(memo):
            ev.memo[(memo.id, idx)] = ev.add(item)
    if finder is None:
        return ev
    for trig in triggers:
        for role, hit in passages_for(trig, facts, ruleset, finder, teams).items():
            ev.passages[(trig.rule.id, trig.key, role)] = ev.add(kb_item(hit))
            if role == "policy":
                cap = discount_cap(hit.chunk.text, str(trig.data.get("tier", "")))
                if cap is not None:
                    ev.discount_caps[str(trig.data.get("tier"))] = cap
    return ev


def draft_for_trigger(trig: Trigger, ev: EvidenceSet) -> Draft | None:
    kind = KINDS.get(trig.rule.kind)
    return kind.draft(trig, ev) if kind is not None else None
