"""Rule drafts read from a company's own policy and rules documents, offline, by sentence patterns.

    drafts = draft_rules("rules/sales_policy.md", text)
    drafts[0].expression   # 'opp.quote_days_no_contact > 7'
    drafts[0].citation     # {"source": "rules/sales_policy.md", "quote": "报价发出后7天内未与客户再次联系的，…"}

Each draft is a condition in the expression language (``copilot.agent.conditions``) with its threshold, the
action it suggests and the verbatim sentence it came from. A draft that matches a built-in kind (price
objection, competitor, overdue task) names that preset (``preset``): approving it gives the preset the
company's sentence as its citation. A draft that restates a preset with the company's own numbers
(visit cadence, stage stall, purchase decline) ``replaces`` it. Nothing fires until a manager approves. Pure.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_SENTENCE = re.compile(r"[^。；;！!？?\n]+[。；;！!？?]?")
_CN = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
NUM = r"(?:\d+(?:\.\d+)?|[一二两三四五六七八九十百]+)"


def number(text: str) -> float | None:
    """``45`` / ``四十五`` / ``两`` / ``1.5`` → float; None otherwise."""
    text = text.strip().replace(",", "")
    try:
        return float(text)
    except ValueError:
        pass
    if not text or any(c not in _CN and c not in "十百" for c in text):
        return None
    total, current = 0, 0
    for ch in text:
        if ch == "百":
            total += (current or 1) * 100
            current = 0
        elif ch == "十":
            total += (current or 1) * 10
            current = 0
        else:
            current = _CN[ch]
    return float(total + current)


def _int(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def money(amount: str, unit: str) -> int | float:
    value = number(amount) or 0.0
    return _int(value * {"万": 10_000, "亿": 100_000_000}.get(unit[:1], 1))


def days(amount: str, unit: str) -> int:
    value = number(amount) or 0.0
    return int(value * (30 if "月" in unit else 7 if unit in ("周", "星期") else 1))


@dataclass(frozen=True, slots=True)
class RuleDraft:
    id: str
    expression: str
    action_type: str
    description: str
    citation: dict[str, str]
    topic: str
    preset: str | None = None  # a built-in rule this draft gives the company's citation to
    replaces: tuple[str, ...] = ()  # built-in rules this draft supersedes when approved
    params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "expression": self.expression,
            "action_type": self.action_type,
            "description": self.description,
            "citation": dict(self.citation),
            "topic": self.topic,
            **({"preset": self.preset} if self.preset else {}),
            **({"replaces": list(self.replaces)} if self.replaces else {}),
        }


def _action(sentence: str, default: str) -> str:
    """The action a sentence asks for when it says so explicitly (escalation wins)."""
    if re.search(
        r"升级|上报|报(?:给)?[\u4e00-\u9fff]{0,4}?(?:经理|总监|主管|负责人)|经理约谈|报告[\u4e00-\u9fff]{0,4}?(?:经理|总监)",
        sentence,
    ):
        return "escalate"
    return default


# -- patterns: sentence → (topic, expression, action, preset, replaces) --------------------------------

Match = tuple[str, str, str, str | None, tuple[str, ...]]


def _cadence(s: str) -> Match | None:
    if "拜访" not in s:
        return None
    pairs = re.findall(rf"([ABCDabcd])\s*[类级][^。；;，,]{{0,16}}?({NUM})\s*(天|个月|周)", s)
    if not pairs:
        return None
    seen: dict[str, int] = {}
    for tier, amount, unit in pairs:
        seen.setdefault(tier.upper(), days(amount, unit))
    parts = [f'(tier == "{t}" and days_since_visit > {d})' for t, d in seen.items()]
    expr = parts[0][1:-1] if len(parts) == 1 else " or ".join(parts)
    return "visit_cadence", expr, "schedule_visit", None, ("visit_cadence",)


def _quote(s: str) -> Match | None:
    if (
        not re.search(r"报价|方案", s)
        or not re.search(r"未|没有|仍未|无", s)
        or not re.search(r"联系|跟进|沟通|回复", s)
    ):
        return None
    m = re.search(rf"({NUM})\s*(天|个工作日|周)", s)
    if not m:
        return None
    return "quote", f"opp.quote_days_no_contact > {days(m.group(1), m.group(2))}", "follow_up_quote", None, ()


def _big_deal(s: str) -> Match | None:
    if not re.search(r"售前|顾问|专家|工程师", s):
        return None
    m = re.search(rf"(?:超过|大于|高于|逾|达到|不低于|满)\s*({NUM})\s*(万元|亿元|元|万)", s) or re.search(
        rf"({NUM})\s*(万元|亿元|元|万)(?:以上|及以上)", s
    )
    if not m or not re.search(r"金额|合同额|商机|项目|订单", s):
        return None
    amount = money(m.group(1), m.group(2) or "")
    return "big_deal", f"opp.amount > {amount} and not opp.se_assigned", "involve_expert", None, ()


def _stall(s: str) -> Match | None:
    if not re.search(r"同一阶段|阶段停留|停留在|阶段.{0,6}超过", s):
        return None
    m = re.search(rf"({NUM})\s*(天|个月|周)", s)
    if not m:
        return None
    return (
        "stage_stall",
        f"opp.days_in_stage > {days(m.group(1), m.group(2))}",
        _action(s, "escalate"),
        None,
        ("stage_stall",),
    )


def _receivable(s: str) -> Match | None:
    # 回款, 设备款/验收款, 维保费, 应收: money owed, whatever the company calls it
    if not re.search(r"回款|款|应收|欠|费用?|付款", s) or "逾期" not in s:
        return None
    m = re.search(rf"逾期[^。；;]{{0,6}}?({NUM})\s*(天|个月|周)", s)
    if m:
        n = days(m.group(1), m.group(2))
        return "receivable", f"receivable_overdue_days > {n}", _action(s, "other"), None, ()
    m = re.search(rf"逾期[^。；;]{{0,8}}?({NUM})\s*(万|亿)?元", s)
    if m:
        return (
            "receivable",
            f"receivable_overdue_amount > {money(m.group(1), m.group(2) or '')}",
            _action(s, "other"),
            None,
            (),
        )
    return "receivable", "receivable_overdue_days > 0", _action(s, "other"), None, ()


def _decline(s: str) -> Match | None:
    m = re.search(
        rf"连续\s*({NUM})\s*个?月[^。；;]{{0,12}}?(?:下降|下滑|减少|降幅|降低|跌幅)[^。；;]{{0,6}}?({NUM})\s*[%％]",
        s,
    )
    if not m:
        return None
    n, pct = int(number(m.group(1)) or 0), _int(number(m.group(2)) or 0)
    action = "care_task" if re.search(r"关怀|回访|拜访|了解原因", s) else _action(s, "care_task")
    return "purchase_decline", f"months_declining({pct}) >= {n}", action, None, ("purchase_decline",)


def _renewal(s: str) -> Match | None:
    m = re.search(rf"(?:合同|订阅|服务)[^。；;]{{0,4}}到期前\s*({NUM})\s*(天|个月|周)", s)
    if not m:
        return None
    n = days(m.group(1), m.group(2))
    action = "schedule_visit" if "拜访" in s else _action(s, "other")
    return "renewal", f"days_to_contract_end >= 0 and days_to_contract_end <= {n}", action, None, ()


def _overdue(s: str) -> Match | None:
    late = r"(?:逾期|过了?截止(?:日期|时间)|超过截止(?:日期|时间)|过期)"
    if not re.search(r"承诺|任务|待办|还?没(?:有)?(?:办完|完成|做完)|未(?:办结|完成)", s) or not re.search(
        late, s
    ):
        return None
    m = re.search(rf"{late}\s*(?:超过|满|达)?\s*({NUM})\s*(天|个工作日|周)", s)
    n = days(m.group(1), m.group(2)) if m else 0
    action = _action(s, "other")
    if action != "escalate":
        return "overdue_task", f"task.overdue_days > {n}", "follow_up_quote", "overdue_task", ()
    return "overdue_escalate", f"task.overdue_days > {n}", action, None, ()


def _objection(kind: str, preset: str, words: str, action: str) -> Callable[[str], Match | None]:
    def match(s: str) -> Match | None:
        if re.search(words, s) and re.search(r"客户|院方|校方|厂方|甲方|买方|对方|学校|医院", s):
            return f"objection:{kind}", f'"{kind}" in memo_objections', action, preset, ()
        return None

    return match


def _competitor(s: str) -> Match | None:
    rivals = r"(竞品|竞争对手|友商|对手|其他厂商|其他厂家|别的厂家|别家|其他品牌)"
    if re.search(rf"(提到|提及|出现|对比|拿){rivals}|{rivals}出现", s):
        return "competitor", "has_competitor", "send_material", "competitor", ()
    return None


PATTERNS: tuple[Callable[[str], Match | None], ...] = (
    _decline, _renewal, _receivable, _overdue, _quote, _stall, _big_deal, _cadence,
    _objection("价格", "price_objection", r"价格异议|嫌贵|嫌[^。；;，,]{0,4}(?:贵|高)|价格顾虑|觉得贵", "send_material"),
    _objection("预算", "budget_objection", r"预算(?:紧|不足|紧张)", "send_material"),
    _objection("交付", "delivery_objection", r"交付周期|交期", "send_material"),
    _objection("技术", "technical_objection", r"技术(?:问题|顾虑|异议)|临床问题|系统对接", "involve_expert"),
    _competitor,
)  # fmt: skip


_HEADING = re.compile(r"^(?:#+|\d+(?:\.\d+)*[、.\s]|[一二三四五六七八九十]+、)")


def sentences(text: str) -> list[str]:
    """Sentences worth reading as rules: headings and short labels are skipped."""
    out = []
    for s in _SENTENCE.findall(text):
        s = s.strip()
        if len(s) < 8 or (s.startswith("#") or (_HEADING.match(s) and len(s) < 24 and "，" not in s)):
            continue
        out.append(s)
    return out


def draft_id(source: str, expression: str, action: str) -> str:
    return "rd_" + hashlib.sha256(f"{source}\n{expression}\n{action}".encode()).hexdigest()[:10]


def draft_rules(source: str, text: str) -> list[RuleDraft]:
    """Every rule a document states, one draft per (sentence, condition), in document order."""
    out: list[RuleDraft] = []
    seen: set[str] = set()
    for s in sentences(text):
        for pattern in PATTERNS:
            found = pattern(s)
            if found is None:
                continue
            topic, expr, action, preset, replaces = found
            if (topic, expr) in seen:
                break
            seen.add((topic, expr))  # type: ignore[arg-type]
            description = s.rstrip("。；;") if len(s) <= 80 else s[:79] + "…"
            out.append(RuleDraft(draft_id(source, expr, action), expr, action, description,
                                 {"source": source, "quote": s}, topic, preset, replaces))  # fmt: skip
            break
    return out
