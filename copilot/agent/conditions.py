"""What a manager's rule condition can say about a customer: the variables of the expression language
(``expression.Catalogue``), their values for one customer as of a date, and the CRM/memo records that
back each value (what a fired rule cites).

    for b in bindings(expr, facts):          # one per open opportunity / open task when the rule names one
        if truthy(expr, b.env, FUNCTIONS_FOR(facts)): ...

Scopes: ``opp`` (each open opportunity; custom CRM fields such as ``opp.quote_sent_date`` are readable),
``task`` (each open CRM task and each memo/visit commitment no CRM task covers), ``custom`` (the customer's
custom CRM fields). Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from connectors.crm.base import Opportunity, Task
from copilot.agent.expression import Catalogue, Expression, ExpressionError, parse
from copilot.agent.facts import Commitment, Facts, Mention, competitors_in, open_commitments, parse_day

NO_VISIT_DAYS = 9999
CLOSED = ("赢单", "输单")
# Custom field names under which CRMs keep "who is the presales engineer" and "when does the contract end".
PRESALES_KEYS = ("se_assigned", "presales", "presales_engineer", "solution_consultant", "solution_engineer",
                 "售前", "售前工程师", "解决方案顾问")  # fmt: skip
CONTRACT_END_KEYS = ("contract_end", "contract_end_date", "renewal_date", "合同到期日", "到期日")
RECEIVABLE_KEYS = ("receivables", "invoices", "应收账款", "回款")

CATALOGUE = Catalogue(
    variables={
        "tier": "客户等级（A/B/C）",
        "industry": "行业",
        "region": "地区",
        "days_since_visit": f"距最近一次拜访的天数（没有拜访记录时为 {NO_VISIT_DAYS}）",
        "purchase_change": "最近一个完整月的采购额环比变化（%，下降为负数）",
        "receivable_overdue_days": "逾期未回款中最长的逾期天数（没有逾期为 0）",
        "receivable_overdue_amount": "逾期未回款金额合计（元）",
        "days_to_contract_end": "距合同到期的天数（CRM 自定义字段 contract_end）",
        "open_tasks": "未完成的 CRM 任务数",
        "overdue_tasks": "已逾期的任务数（含录音/拜访记录中的承诺）",
        "memo_objections": '最新录音/拜访记录中的异议类型，如 "价格" in memo_objections',
        "memo_competitors": "最新录音、近期拜访记录与在谈商机中出现的竞品",
        "has_competitor": "是否出现竞品（true/false）",
    },
    scopes={
        "opp": {
            "name": "商机名称",
            "stage": "商机阶段",
            "amount": "商机金额（元）",
            "days_in_stage": "在当前阶段停留的天数",
            "se_assigned": "指派的售前/解决方案顾问（空 = 未指派）",
            "quote_sent_date": "报价发出日期",
            "days_since_quote": "报价发出至今的天数",
            "quote_days_no_contact": "报价发出后未联系客户的天数（之后有拜访则从最近一次拜访算起）",
            "competitors": "商机登记的竞品",
            "days_to_close": "距预计成交日的天数",
        },
        "task": {
            "title": "任务或承诺内容",
            "due": "截止日期",
            "overdue_days": "逾期天数（未逾期为 0）",
            "days_to_due": "距截止日期的天数",
            "source": "来源：crm（CRM 任务）| memo（录音中的承诺）| visit（拜访记录中的承诺）",
        },
        "custom": {},
    },
    functions={
        "months_declining": "months_declining(15)：最近连续几个完整月的采购额环比降幅都超过 15%",
        "days_since": "days_since(日期)：距该日期已过的天数",
        "days_until": "days_until(日期)：距该日期还有的天数",
    },
    open_scopes=frozenset({"opp", "custom"}),
)


def compile_condition(text: str) -> Expression:
    """Parse and validate a manager's condition; ExpressionError (Chinese) says what to fix."""
    return parse(text, CATALOGUE)


# -- values -------------------------------------------------------------------------------------------


def _days(a: date | None, b: date | None) -> int | None:
    return (b - a).days if a and b else None


def first_custom(custom: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, Any] | tuple[None, None]:
    for k in keys:
        if k in custom:
            return k, custom[k]
    return None, None


# Companies name the field their own way (maintenance_contract_end, subscription_end_date, 维保到期日):
# a custom field with a date whose name says a contract/subscription/service ends.
_CONTRACT_END_NAME = re.compile(
    r"(contract|renewal|subscription|service|maintenance|warranty|licen[cs]e|合同|维保|服务|订阅|续约|续费)"
    r".*(end|expir|renewal|到期)|^renewal|到期",
    re.I,
)


_SCALAR = str | int | float | bool | type(None)


def flat_custom(custom: dict[str, Any]) -> dict[str, Any]:
    """Custom CRM fields for conditions: scalars as they are, and the scalars of a record one level down
    as ``<field>_<key>`` (``pilot: {status, last_feedback}`` → ``custom.pilot_status``,
    ``custom.pilot_last_feedback``)."""
    out = {k: v for k, v in custom.items() if isinstance(v, _SCALAR)}
    for key, value in custom.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                if isinstance(v, _SCALAR):
                    out.setdefault(f"{key}_{sub}", v)
    return out


def custom_source(custom: dict[str, Any], name: str) -> str:
    """The CRM field a condition's ``custom.<name>`` comes from (``pilot_status`` → ``pilot``)."""
    if name in custom:
        return name
    return next((k for k, v in custom.items() if isinstance(v, dict) and name.startswith(f"{k}_")), name)


# A presales engineer under the company's own field name (presales_consultant, 方案工程师, se_owner …).
_PRESALES_NAME = re.compile(r"presales|pre_sales|solution|^se_|_se$|售前|方案工程师|解决方案|技术支持", re.I)


def presales_field(custom: dict[str, Any]) -> tuple[str, Any] | tuple[None, None]:
    """Who the presales engineer is: a known key first, else a field named like one."""
    key, value = first_custom(custom, PRESALES_KEYS)
    if key is not None:
        return key, value
    for k, v in custom.items():
        if _PRESALES_NAME.search(k) and isinstance(v, _SCALAR):
            return k, v
    return None, None


def contract_end_field(custom: dict[str, Any]) -> tuple[str, Any] | tuple[None, None]:
    """The customer's contract end: a known key first, else a dated field named like one."""
    key, value = first_custom(custom, CONTRACT_END_KEYS)
    if key is not None:
        return key, value
    for k, v in custom.items():
        if isinstance(v, str) and _CONTRACT_END_NAME.search(k) and parse_day(v) is not None:
            return k, v
    return None, None


def months_declining(facts: Facts, pct: float = 0.0) -> int:
    """How many of the latest complete months each fell by more than ``pct`` % month on month."""
    n = 0
    for _month, _amount, change in reversed(facts.purchase_changes()):
        if change is None or change >= -float(pct or 0):
            break
        n += 1
    return n


@dataclass(frozen=True, slots=True)
class Receivable:
    label: str
    amount: float
    due: date | None
    overdue_days: int


def receivables(facts: Facts) -> list[Receivable]:
    """Unpaid receivables (custom CRM field ``receivables``: [{invoice, amount, due, paid}]) as of the date."""
    _key, rows = first_custom(facts.customer.custom, RECEIVABLE_KEYS)
    out = []
    for r in rows if isinstance(rows, list) else []:
        if not isinstance(r, dict) or r.get("paid") in (True, "true", "是", "yes"):
            continue
        paid_on = parse_day(str(r.get("paid_date") or ""))
        if paid_on is not None and paid_on <= facts.as_of:
            continue
        due = parse_day(str(r.get("due") or ""))
        try:
            amount = float(r.get("amount") or 0)
        except (TypeError, ValueError):
            amount = 0.0
        late = max(0, (facts.as_of - due).days) if due else 0
        out.append(Receivable(str(r.get("invoice") or r.get("id") or ""), amount, due, late))
    return out


def presales(opp: Opportunity, facts: Facts) -> Any:
    key, value = presales_field(opp.custom)
    if key is None:
        key, value = presales_field(facts.customer.custom)
    return value or ""


def last_contact_after(facts: Facts, day: date) -> date:
    dates = [d for v in facts.customer.visits if (d := parse_day(v.date)) and day <= d <= facts.as_of]
    return max(dates, default=day)


def opp_env(opp: Opportunity, facts: Facts) -> dict[str, Any]:
    quote = parse_day(str(first_custom(opp.custom, ("quote_sent_date", "quote_date", "报价日期"))[1] or ""))
    if quote is not None and quote > facts.as_of:
        quote = None
    env = {k: v for k, v in opp.custom.items() if isinstance(v, str | int | float | bool | type(None))}
    env.update(
        name=opp.name,
        stage=opp.stage,
        amount=opp.amount,
        days_in_stage=facts.days_in_stage(opp),
        se_assigned=presales(opp, facts),
        quote_sent_date=quote.isoformat() if quote else None,
        days_since_quote=_days(quote, facts.as_of),
        quote_days_no_contact=_days(last_contact_after(facts, quote), facts.as_of) if quote else None,
        competitors=list(opp.competitors),
        days_to_close=_days(facts.as_of, parse_day(opp.expected_close)),
    )
    return env


@dataclass(frozen=True, slots=True)
class TaskLike:
    """A CRM task or an uncovered commitment, as the ``task`` scope sees it."""

    title: str
    due: date | None
    source: str  # crm | memo | visit
    task: Task | None = None
    commitment: Commitment | None = None

    @property
    def key(self) -> str:
        if self.task is not None:
            return self.task.id
        c = self.commitment
        return f"{c.kind}:{c.ref}:{c.index}:{self.title[:20]}" if c else self.title


def open_tasks(facts: Facts) -> list[TaskLike]:
    out = [
        TaskLike(t.title, parse_day(t.due), "crm", task=t) for t in facts.customer.tasks if t.status != "done"
    ]
    out += [TaskLike(c.action, c.due, c.kind, commitment=c) for c in open_commitments(facts)]
    return out


def task_env(t: TaskLike, facts: Facts) -> dict[str, Any]:
    return {
        "title": t.title,
        "due": t.due.isoformat() if t.due else None,
        "overdue_days": max(0, (facts.as_of - t.due).days) if t.due else 0,
        "days_to_due": _days(facts.as_of, t.due),
        "source": t.source,
    }


def functions(facts: Facts) -> dict[str, Callable[..., Any]]:
    def since(value: Any) -> int | None:
        return _days(parse_day(str(value or "")), facts.as_of)

    def until(value: Any) -> int | None:
        return _days(facts.as_of, parse_day(str(value or "")))

    return {
        "months_declining": lambda pct=0: months_declining(facts, pct),
        "days_since": since,
        "days_until": until,
    }


@dataclass
class Binding:
    """One way the condition can be evaluated: the customer, plus one opportunity and/or one task."""

    env: dict[str, Any]
    key: str
    opp: Opportunity | None = None
    task: TaskLike | None = None
    mentions: list[Mention] = field(default_factory=list)


def customer_env(facts: Facts, objections: dict[str, list[Mention]] | None = None) -> dict[str, Any]:
    c = facts.customer
    changes = facts.purchase_changes()
    owed = receivables(facts)
    late = [r for r in owed if r.overdue_days > 0]
    _k, end = contract_end_field(c.custom)
    end_day = parse_day(str(end or ""))
    tasks = open_tasks(facts)
    competitors = competitors_in(facts, 90)
    return {
        "tier": (c.tier or "").upper(),
        "industry": c.industry or "",
        "region": c.region or "",
        "days_since_visit": facts.days_since_visit if facts.days_since_visit is not None else NO_VISIT_DAYS,
        "purchase_change": changes[-1][2] if changes else None,
        "receivable_overdue_days": max((r.overdue_days for r in late), default=0),
        "receivable_overdue_amount": sum(r.amount for r in late),
        "days_to_contract_end": _days(facts.as_of, end_day),
        "open_tasks": sum(1 for t in tasks if t.source == "crm"),
        "overdue_tasks": sum(1 for t in tasks if t.due and t.due < facts.as_of),
        "memo_objections": sorted(objections or {}),
        "memo_competitors": sorted(competitors),
        "has_competitor": bool(competitors),
        "custom": flat_custom(c.custom),
    }


def bindings(
    expr: Expression, facts: Facts, objections: dict[str, list[Mention]] | None = None
) -> Iterator[Binding]:
    base = customer_env(facts, objections)
    opps: list[Opportunity | None] = [None]
    if "opp" in expr.variables:
        opps = [o for o in facts.customer.opportunities if o.stage not in CLOSED]
    tasks: list[TaskLike | None] = [None]
    if "task" in expr.variables:
        tasks = list(open_tasks(facts))
    for opp in opps:
        for task in tasks:
            env = dict(base)
            if opp is not None:
                env["opp"] = opp_env(opp, facts)
            if task is not None:
                env["task"] = task_env(task, facts)
            key = "|".join(x for x in (opp.id if opp else "", task.key if task else "") if x) or "customer"
            yield Binding(env, key, opp, task)


def check_condition(text: str) -> str | None:
    """None when ``text`` is a valid condition, else the Chinese error."""
    try:
        compile_condition(text)
    except ExpressionError as exc:
        return str(exc)
    return None
