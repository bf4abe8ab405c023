"""A commitment or next step the rep made in a memo or wrote in a visit note, with no CRM task covering
it: a follow-up suggestion whose action type follows what was promised (a quote → follow_up_quote, a
presales session → involve_expert, sending something → send_material, a visit → schedule_visit). The
proposed CRM task carries the promised due date. Overdue commitments escalate through the managers'
own rules (``task.overdue_days > 3`` → escalate), which see commitments in the ``task`` scope."""

from __future__ import annotations

import re

from copilot.agent.drafting import Draft, draft_context
from copilot.agent.evidence import EvidenceSet
from copilot.agent.facts import Commitment, Facts, open_commitments
from copilot.agent.ruleset import Rule, RuleSet, Trigger

_ACTIONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("involve_expert", re.compile(r"售前|专家|顾问|工程师|技术评审|技术交流")),
    ("follow_up_quote", re.compile(r"报价|合同|折扣|价格")),
    ("send_material", re.compile(r"发|寄|交|给|资料|案例|文档|说明|测算|明细|方案")),
    ("schedule_visit", re.compile(r"拜访|约|见|上门|参观|演示|过去|回访")),
)


def action_for(text: str) -> str:
    return next((action for action, pattern in _ACTIONS if pattern.search(text)), "other")


def evaluate(rule: Rule, facts: Facts, ruleset: RuleSet) -> list[Trigger]:
    lookback = int(rule.param("lookback_days", 45))
    out = []
    for c in open_commitments(facts, lookback):
        if c.due is None and not rule.param("include_undated", False):
            continue
        late = (facts.as_of - c.due).days if c.due else 0
        out.append(
            Trigger(rule, f"{c.kind}:{c.ref}:{c.index}:{c.action[:20]}", {"commitment": c, "late": late})
        )
    return out


def draft(trig: Trigger, ev: EvidenceSet) -> Draft | None:
    cx, rule = draft_context(trig, ev), trig.rule
    c: Commitment = trig.data["commitment"]
    late: int = trig.data["late"]
    b = cx.b
    if c.kind == "memo":
        claims = b.claim(ev.memo.get((c.ref, c.index)), None, (c.action[:6], c.action[-6:]))
        where = f"拜访录音 {c.ref} 中"
    else:
        claims = b.claim(ev.visit_id(c.index)) if c.index is not None else []
        where = f"{c.ref} 的拜访记录中"
    if not claims:
        return None
    due = c.due.isoformat() if c.due else "未定"
    state = f"已逾期 {late} 天" if late > 0 else f"截止 {due}"
    action = str(rule.param("action_type_override") or "") or action_for(c.action)
    task = b.task(c.action, max(0, (c.due - ev.facts.as_of).days) if c.due and late <= 0 else 1)
    return Draft(
        action,
        f"兑现承诺：{c.action}（{state}）",
        f"{where}承诺「{c.action}」，截止 {due}，CRM 中还没有对应的跟进任务。{cx.rule_note}",
        0.8 + cx.bonus + (0.05 if late > 0 else 0.0),
        (*claims, *cx.reason),
        task,
        rule.id,
    )
