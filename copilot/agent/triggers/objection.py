"""An objection of one type raised in the latest memo or visit: send the matching material (and a
same-industry case), or, for technical concerns, bring in a presales expert (involve_expert)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from copilot.agent.drafting import Draft, doc_names, draft_context
from copilot.agent.evidence import EvidenceSet, PassageFinder, first_hit
from copilot.agent.facts import Facts, objections_in
from copilot.agent.ruleset import Rule, RuleSet, Trigger

if TYPE_CHECKING:
    from knowledge_base.documents import Hit


def evaluate(rule: Rule, facts: Facts, ruleset: RuleSet) -> list[Trigger]:
    kind = str(rule.param("objection", ""))
    found = objections_in(facts, ruleset.objection_keywords)
    return [Trigger(rule, kind, {"objection": kind, "mentions": found[kind]})] if kind in found else []


def passages(
    trigger: Trigger, facts: Facts, ruleset: RuleSet, finder: PassageFinder, teams: set[str] | None
) -> dict[str, Hit]:
    rule, out, as_of = trigger.rule, {}, facts.as_of
    kind = str(rule.param("objection", ""))
    words = (kind, *ruleset.objection_keywords.get(kind, ()))
    hits = finder.search(str(rule.param("material_query", kind)), teams=teams, as_of=as_of,
                         doc_types=tuple(rule.param("material_types") or ()), k=6)  # fmt: skip
    hit = first_hit(hits, words)
    if hit:
        out["material"] = hit
    industry = facts.customer.industry
    if rule.param("same_industry_case") and industry:
        case = _same_industry_case(finder, f"{industry} 客户案例 {kind}", industry, teams, facts)
        if case:
            out["case"] = case
    return out


def _same_industry_case(finder: PassageFinder, query: str, industry: str, teams: set[str] | None,
                        facts: Facts) -> Hit | None:  # fmt: skip
    hits = finder.search(query, teams=teams, as_of=facts.as_of, doc_types=("case",), industry=industry, k=3)
    if hits:
        return hits[0]
    stem = industry[:2]
    hits = finder.search(query, teams=teams, as_of=facts.as_of, doc_types=("case",), k=6)
    return next((h for h in hits if stem in f"{h.document.industry or ''}{h.document.title}"), None)


def draft(trig: Trigger, ev: EvidenceSet) -> Draft | None:
    cx, rule, data = draft_context(trig, ev), trig.rule, trig.data
    b, kind = cx.b, data["objection"]
    expert = rule.action_type == "involve_expert"  # a specialist is needed; documents only help
    said = tuple(dict.fromkeys(m.keyword for m in data["mentions"])) if expert else ()
    material = b.passage(trig, "material", (*said, str(kind)))
    case = b.passage(trig, "case", (b.c.industry or "",))
    if not material and not case and not expert:
        return None
    docs = doc_names([ev.items[c.evidence_id].label for c in (*material, *case)])
    if expert:
        asked = "、".join(said) or kind
        title = f"请售前/技术专家支持：解答客户关于{asked}的问题"
        task = b.task(f"邀请售前/技术专家参与下次沟通，解答{asked}问题" + (f"（参考{docs}）" if docs else ""),
                      cx.due_days)  # fmt: skip
    else:
        title, task = f"应对{kind}异议：发送{docs}", b.task(f"发送{kind}异议资料：{docs}", cx.due_days)
    return Draft(
        rule.action_type,
        title,
        f"{b.where(data['mentions'])}客户提出{kind}方面的顾虑。{cx.rule_note}",
        0.75 + cx.bonus,
        (*b.mentions(data["mentions"]), *material, *case, *cx.reason),
        task,
        rule.id,
    )
