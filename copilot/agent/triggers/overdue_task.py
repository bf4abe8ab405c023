"""An open CRM task past its due date (a quote/proposal task → follow_up_quote)."""

from __future__ import annotations

from copilot.agent.drafting import Draft, draft_context
from copilot.agent.evidence import EvidenceSet
from copilot.agent.facts import Facts
from copilot.agent.ruleset import Rule, RuleSet, Trigger


def evaluate(rule: Rule, facts: Facts, ruleset: RuleSet) -> list[Trigger]:
    words = tuple(rule.param("quote_keywords") or ())
    out = []
    for task, days in facts.overdue_tasks():
        is_quote = any(w in task.title for w in words)
        action = rule.action_type if is_quote or rule.action_type != "follow_up_quote" else "other"
        out.append(Trigger(rule, task.id, {"task": task, "days": days, "action_type": action}))
    return out


def draft(trig: Trigger, ev: EvidenceSet) -> Draft | None:
    cx, rule, data = draft_context(trig, ev), trig.rule, trig.data
    b, task = cx.b, data["task"]
    return Draft(
        str(data.get("action_type") or rule.action_type),
        f"跟进逾期任务：{task.title}（已逾期 {data['days']} 天）",
        f"该任务截止 {task.due}，至今未完成。建议尽快联系客户说明情况并完成，同时在 CRM 中更新任务状态。{cx.rule_note}",
        0.85 + cx.bonus,
        (*b.part(ev.crm_id("tasks", task.id), "status"), *cx.reason),
        b.task(f"完成逾期任务：{task.title}", cx.due_days),
        rule.id,
    )
