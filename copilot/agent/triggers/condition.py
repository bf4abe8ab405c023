"""A manager's own condition (``expression``) over customer facts, e.g.
``opp.amount > 1000000 and not opp.se_assigned`` → involve_expert. Fires once per customer, or once per
open opportunity / open task (commitments included) when the condition names ``opp`` / ``task``.

The suggestion cites the CRM records (or memo segments) behind every value the condition reads, and the
rule's own sentence in the company's rules document when the rule was drafted from one (``citation``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from copilot.agent.citations import ClaimedCitation
from copilot.agent.conditions import (
    CATALOGUE,
    NO_VISIT_DAYS,
    Binding,
    bindings,
    compile_condition,
    contract_end_field,
    custom_source,
    functions,
)
from copilot.agent.drafting import Draft, DraftBuilder, draft_context
from copilot.agent.evidence import EvidenceSet, PassageFinder
from copilot.agent.expression import Expression, ExpressionError, truthy
from copilot.agent.facts import Facts, competitors_in, objections_in
from copilot.agent.ruleset import Rule, RuleSet, Trigger

if TYPE_CHECKING:
    from knowledge_base.documents import Hit


@lru_cache(maxsize=512)
def _compiled(text: str) -> Expression | None:
    try:
        return compile_condition(text)
    except ExpressionError:
        return None


def evaluate(rule: Rule, facts: Facts, ruleset: RuleSet) -> list[Trigger]:
    expr = _compiled(rule.expression or str(rule.param("expression", "")))
    if expr is None:
        return []
    objections = (
        objections_in(facts, ruleset.objection_keywords) if "memo_objections" in expr.variables else None
    )
    fns = functions(facts)
    out = []
    for b in bindings(expr, facts, objections):
        if truthy(expr, b.env, fns):
            if objections and "memo_objections" in expr.variables:
                b.mentions = [m for kind in b.env["memo_objections"] for m in objections.get(kind, [])][:2]
            if expr.variables & {"memo_competitors", "has_competitor"}:
                b.mentions += [m for ms in competitors_in(facts, 90).values() for m in ms][:2]
            out.append(Trigger(rule, b.key, {"binding": b, "expr": expr}))
    return out


def _norm(text: str) -> str:
    return re.sub(r"[\s，,。；;：:、（）()“”\"'《》]+", "", text)


def rule_passage(rule: Rule, facts: Facts, finder: PassageFinder, teams: set[str] | None) -> Hit | None:
    """The chunk of the company's rules document that holds the rule's sentence."""
    quote = str(rule.citation.get("quote") or "")
    if not quote:
        return None
    source = str(rule.citation.get("source") or "")
    want = _norm(quote)
    for types in (("rules", "policy"), ()):
        hits = finder.search(quote, teams=teams, as_of=facts.as_of, doc_types=types, k=8)
        ranked = sorted(hits, key=lambda h: h.document.path != source)
        for h in ranked:
            if want and want[:24] in _norm(h.chunk.text):
                return h
    return None


def passages(
    trigger: Trigger, facts: Facts, ruleset: RuleSet, finder: PassageFinder, teams: set[str] | None
) -> dict[str, Hit]:
    hit = rule_passage(trigger.rule, facts, finder, teams)
    return {"reason": hit} if hit else {}


# -- wording --------------------------------------------------------------------------------------

_LABELS = {
    "days_since_visit": "距上次拜访",
    "receivable_overdue_days": "回款最长逾期",
    "receivable_overdue_amount": "逾期金额",
    "days_to_contract_end": "距合同到期",
    "purchase_change": "最近一月采购额环比",
    "overdue_tasks": "逾期任务数",
    "open_tasks": "未完成任务数",
    "tier": "客户等级",
}
_OPP_LABELS = {
    "amount": "商机金额",
    "days_in_stage": "当前阶段停留",
    "se_assigned": "售前",
    "days_since_quote": "报价发出",
    "quote_days_no_contact": "报价后未联系",
    "stage": "阶段",
    "days_to_close": "距预计成交",
}
_DAY_FIELDS = {"days_since_visit", "receivable_overdue_days", "days_to_contract_end", "days_in_stage",
               "days_since_quote", "quote_days_no_contact", "days_to_close", "overdue_days", "days_to_due"}  # fmt: skip


def _fmt(name: str, value: Any) -> str:
    if value is None or value == "":
        return "未指派" if name == "se_assigned" else "—"
    if name == "days_since_visit" and value == NO_VISIT_DAYS:
        return "无拜访记录"
    if name in _DAY_FIELDS:
        return f"{value} 天"
    if isinstance(value, float) and name == "purchase_change":
        return f"{value:+.1f}%"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:,.0f}"
    return str(value)


def facts_text(expr: Expression, b: Binding) -> str:
    parts = []
    for name in sorted(expr.variables):
        if name in _LABELS:
            parts.append(f"{_LABELS[name]} {_fmt(name, b.env.get(name))}")
        elif name == "months_declining" and b.env.get("purchase_change") is not None:
            parts.append(f"最近一月采购额环比 {_fmt('purchase_change', b.env['purchase_change'])}")
    for f in sorted(expr.fields):
        scope, _, attr = f.partition(".")
        if scope == "opp" and attr in _OPP_LABELS:
            parts.append(f"{_OPP_LABELS[attr]} {_fmt(attr, b.env['opp'].get(attr))}")
        elif scope == "task" and attr == "overdue_days":
            parts.append(f"已逾期 {b.env['task']['overdue_days']} 天")
    return "；".join(parts)


_ACTION_TITLE = {
    "schedule_visit": "安排拜访",
    "follow_up_quote": "跟进报价",
    "involve_expert": "申请售前/专家支持",
    "escalate": "升级至经理",
    "care_task": "关怀任务",
    "send_material": "发送资料",
    "update_stage": "核对商机阶段",
    "other": "跟进",
}


def _subject(b: Binding, short: str) -> str:
    if b.task is not None:
        return f"「{b.task.title}」" + (f"（截止 {b.task.due}）" if b.task.due else "")
    if b.opp is not None:
        return f"商机「{b.opp.name}」"
    return short


# -- citations ------------------------------------------------------------------------------------


def _claims(expr: Expression, b: Binding, bld: DraftBuilder, ev: EvidenceSet) -> list[ClaimedCitation]:
    out: list[ClaimedCitation] = []
    names = expr.variables
    if b.opp is not None:
        out += bld.claim(ev.crm_id("opportunities", b.opp.id))
    if b.task is not None:
        t = b.task
        if t.task is not None:
            out += bld.claim(ev.crm_id("tasks", t.task.id))
        elif t.commitment is not None and t.commitment.kind == "memo":
            out += bld.claim(
                ev.memo.get((t.commitment.ref, t.commitment.index)), None, (t.title[:6], t.title[-6:])
            )
        elif t.commitment is not None and t.commitment.index is not None:
            out += bld.claim(ev.visit_id(t.commitment.index))
    if "days_since_visit" in names:
        out += bld.part(ev.crm_id("visits", "latest"), "summary")
    if names & {"purchase_change", "months_declining"}:
        out += bld.claim(next((i for (f, _loc), i in ev.crm.items() if f == "purchases"), None))
    if names & {"receivable_overdue_days", "receivable_overdue_amount"}:
        out += bld.claim(
            next((i for (f, _loc), i in ev.crm.items() if f in ("receivables", "invoices")), None)
        )
    if "days_to_contract_end" in names:
        key, _v = contract_end_field(ev.facts.customer.custom)
        out += bld.claim(ev.crm_id(key, key) if key else None)
    for f in expr.fields:
        scope, _, attr = f.partition(".")
        if scope == "custom":
            source = custom_source(ev.facts.customer.custom, attr)
            out += bld.claim(ev.crm_id(source, source))
    if names & {"open_tasks", "overdue_tasks"} and b.task is None:
        overdue = [t.id for t, _d in ev.facts.overdue_tasks()][:2]
        for tid in overdue:
            out += bld.claim(ev.crm_id("tasks", tid))
    if b.mentions:
        out += bld.mentions(b.mentions)
    if names & {"tier", "industry", "region"} and not out:
        out += bld.claim(ev.crm_id("profile", "profile"))
    return out


def draft(trig: Trigger, ev: EvidenceSet) -> Draft | None:
    cx, rule = draft_context(trig, ev), trig.rule
    b: Binding = trig.data["binding"]
    expr: Expression = trig.data["expr"]
    bld = cx.b
    claims = _claims(expr, b, bld, ev)
    if not claims:
        return None
    subject = _subject(b, bld.short)
    verb = _ACTION_TITLE.get(rule.action_type, "跟进")
    facts = facts_text(expr, b)
    rationale = f"{facts + '。' if facts else ''}{cx.rule_note}（条件：{expr.source}）"
    task_title = f"{verb}：{subject if b.opp is None and b.task is None else bld.short + ' ' + subject}"
    return Draft(
        rule.action_type,
        f"{verb}：{subject}" + (f"（{facts}）" if facts and len(facts) <= 40 else ""),
        rationale,
        0.8 + cx.bonus,
        (*claims, *cx.reason),
        bld.task(task_title, cx.due_days),
        rule.id,
    )


__all__ = ["CATALOGUE", "draft", "evaluate", "passages", "rule_passage"]
