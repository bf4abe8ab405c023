"""The offline (no-LLM) planner: fired rules + detected situations + retrieved talk tracks → suggestions.

Every suggestion cites what triggered it (the CRM record, the memo segment), the passage it asks
the rep to use, and the knowledge base's own rule when one exists. ``finalize`` is shared with the
LLM planner: citations go through the validator, suggestions without a valid citation are dropped
and ``vet`` rejects unsafe proposals (discounts beyond policy, stage changes not grounded in CRM facts).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.crm.base import STAGES, draft_fields, draft_for
from copilot.agent.citations import ClaimedCitation, short_name, validate
from copilot.agent.evidence import EvidenceSet
from copilot.agent.rules import Mention, Trigger
from copilot.agent.safety import looks_like_injection
from copilot.domain import ACTION_TYPES, CHANGE_OPS, Citation, ProposedChange, Suggestion

_SENTENCE = re.compile(r"[^。！？；!?;\n]+[。！？；!?;]?")
MAX_QUOTE = 160


@dataclass(frozen=True, slots=True)
class Draft:
    action_type: str
    title: str
    rationale: str
    confidence: float
    claims: tuple[ClaimedCitation, ...]
    proposed_change: ProposedChange | None = None
    rule_id: str | None = None


@dataclass
class PlanResult:
    suggestions: list[Suggestion]
    mode: str = "offline"  # offline | llm
    note: str | None = None
    dropped_citations: int = 0
    dropped_suggestions: int = 0
    unsafe: list[str] = field(default_factory=list)  # reasons, for logs and tests (no text)


def pick_sentence(text: str, keywords: tuple[str, ...] | list[str] = ()) -> str:
    """A verbatim span of ``text``: the sentence with the most keywords (tags and stubs skipped), extended
    by the next sentence when short; at most ~MAX_QUOTE chars."""
    sentences = [s.strip() for s in _SENTENCE.findall(text) if s.strip()] or [text.strip()]
    useful = [
        i for i, s in enumerate(sentences) if len(s) >= 12 and not s.startswith(("场景标签", "版本日期"))
    ]
    pool = useful or list(range(len(sentences)))
    best = max(pool, key=lambda i: (sum(1 for k in keywords if k and k in sentences[i]), -i))
    chosen = sentences[best]
    if len(chosen) < 40 and best + 1 < len(sentences):
        joined = text[text.index(chosen) :]
        nxt = sentences[best + 1]
        end = joined.find(nxt)
        if end >= 0:
            chosen = joined[: end + len(nxt)]
    return chosen if len(chosen) <= MAX_QUOTE else chosen[:MAX_QUOTE]


# -- discounts and other safety checks ------------------------------------------------------------

_CN_DIGIT = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_PCT_AFTER = re.compile(r"(\d+(?:\.\d+)?)\s*[%％](?:\s*的)?\s*(?:折扣|优惠|让利|降价|off)", re.I)
_PCT_BEFORE = re.compile(r"(?:折扣|打折|让利|优惠|降价|下浮|折让)[^。；;，,\n]{0,8}?(\d+(?:\.\d+)?)\s*[%％]")
_ZHE_CN = re.compile(r"([一二三四五六七八九])([一二三四五六七八九])?折")
_ZHE_NUM = re.compile(r"(\d(?:\.\d)?)\s*折")
_POINTS = re.compile(r"([0-9]+|[十一二两三四五六七八九]{1,3})\s*个点")


def _cn_number(text: str) -> int | None:
    if text.isdigit():
        return int(text)
    if "十" in text:
        head, _, tail = text.partition("十")
        return (_CN_DIGIT.get(head, 1) if head else 1) * 10 + (_CN_DIGIT.get(tail, 0) if tail else 0)
    return _CN_DIGIT.get(text)


def discount_mentions(text: str) -> list[float]:
    """Percent-off figures a text offers or mentions: ``15%折扣`` 15, ``八五折`` 15, ``五折`` 50, ``十五个点`` 15."""
    out = [float(m.group(1)) for m in _PCT_AFTER.finditer(text)]
    out += [float(m.group(1)) for m in _PCT_BEFORE.finditer(text)]
    for m in _ZHE_CN.finditer(text):
        tenths = _CN_DIGIT[m.group(1)] * 10 + (_CN_DIGIT[m.group(2)] if m.group(2) else 0)
        out.append(100.0 - tenths)
    for m in _ZHE_NUM.finditer(text):
        out.append(round(100.0 - float(m.group(1)) * 10, 1))
    for m in _POINTS.finditer(text):
        n = _cn_number(m.group(1))
        if n is not None:
            out.append(float(n))
    return out


def _all_text(s: Suggestion) -> str:
    change = json.dumps(s.proposed_change.fields, ensure_ascii=False) if s.proposed_change else ""
    return f"{s.title}\n{s.rationale}\n{change}"


def vet(s: Suggestion, ev: EvidenceSet) -> str | None:
    """Why ``s`` must not be shown (None = safe)."""
    text = _all_text(s)
    if looks_like_injection(text):
        return "instruction_text"
    cap = ev.discount_caps.get(ev.facts.customer.tier or "")
    offered = discount_mentions(text)
    if offered and (cap is None or max(offered) > cap):
        return "discount_beyond_policy"
    change = s.proposed_change
    if s.action_type == "update_stage" or (change and change.op == "update_stage"):
        if not change or change.op != "update_stage":
            return "stage_change_without_change"
        if any(c.kind != "crm" for c in s.citations):
            return "stage_change_not_from_crm"
        stage = str(change.fields.get("stage", ""))
        opp = next(
            (o for o in ev.facts.customer.opportunities if o.id == change.fields.get("opportunity_id")), None
        )
        if stage not in STAGES or stage in ("赢单", "输单") or opp is None or opp.stage in ("赢单", "输单"):
            return "stage_change_not_allowed"
    return None


def clean_change(raw: Any, customer_id: str) -> ProposedChange | None:
    """A proposal the CRM port accepts, always for this customer; anything else is dropped."""
    if not isinstance(raw, dict) or raw.get("op") not in CHANGE_OPS:
        return None
    fields = dict(raw.get("fields") or {}) if isinstance(raw.get("fields"), dict) else {}
    fields["customer_id"] = customer_id
    try:
        draft = draft_for(str(raw["op"]), fields)
    except (ValueError, TypeError):
        return None
    return ProposedChange(str(raw["op"]), draft_fields(draft))


# -- finalize -------------------------------------------------------------------------------------


def fingerprint(customer_id: str, action_type: str, citations: tuple[Citation, ...] | list[Citation]) -> str:
    """Same customer, action type and evidence → same suggestion (DESIGN §7)."""
    keys = sorted({f"{c.kind}:{c.ref}:{c.locator}" for c in citations})
    return hashlib.sha256("|".join([customer_id, action_type, *keys]).encode()).hexdigest()


def finalize(
    drafts: list[Draft], ev: EvidenceSet, *, mode: str = "offline", note: str | None = None
) -> PlanResult:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    result = PlanResult(suggestions=[], mode=mode, note=note)
    seen: set[str] = set()
    customer_id = ev.facts.customer.id
    for d in drafts:
        citations, dropped = validate(d.claims, ev.items)
        result.dropped_citations += len(dropped)
        if not citations:
            result.dropped_suggestions += 1
            continue
        action = d.action_type if d.action_type in ACTION_TYPES else "other"
        fp = fingerprint(customer_id, action, citations)
        if fp in seen:
            continue
        s = Suggestion(
            id=f"sg_{fp[:16]}",
            customer_id=customer_id,
            action_type=action,
            title=d.title.strip()[:200],
            rationale=d.rationale.strip()[:1000],
            confidence=round(min(1.0, max(0.0, float(d.confidence))), 2),
            citations=tuple(citations),
            proposed_change=d.proposed_change,
            status="proposed",
            created_at=now,
        )
        reason = vet(s, ev)
        if reason:
            result.unsafe.append(reason)
            result.dropped_suggestions += 1
            continue
        seen.add(fp)
        result.suggestions.append(s)
    result.suggestions.sort(key=lambda s: s.confidence, reverse=True)
    return result


# -- rule → draft ---------------------------------------------------------------------------------


class _Builder:
    def __init__(self, ev: EvidenceSet) -> None:
        self.ev = ev
        self.facts = ev.facts
        self.c = ev.facts.customer
        self.short = short_name(self.c.name)

    def claim(
        self, eid: str | None, quote: str | None = None, keywords: tuple[str, ...] = ()
    ) -> list[ClaimedCitation]:
        if not eid:
            return []
        text = self.ev.items[eid].text
        if quote is None:
            quote = pick_sentence(text, keywords) if self.ev.items[eid].kind != "crm" else text
        return [ClaimedCitation(eid, quote)]

    def part(self, eid: str | None, name: str) -> list[ClaimedCitation]:
        if not eid:
            return []
        return self.claim(eid, self.ev.parts.get(eid, {}).get(name) or None)

    def passage(self, trig: Trigger, role: str, keywords: tuple[str, ...] = ()) -> list[ClaimedCitation]:
        eid = self.ev.passages.get((trig.rule.id, trig.key, role))
        return self.claim(eid, None, keywords or trig.rule.reason_keywords) if eid else []

    def mentions(self, mentions: list[Mention], limit: int = 2) -> list[ClaimedCitation]:
        out: list[ClaimedCitation] = []
        for m in mentions:
            if m.kind == "memo":
                eid = self.ev.memo.get((m.ref, m.index))
                out += self.claim(eid, None, (m.keyword,))
            elif m.kind == "visit" and m.index is not None:
                out += self.claim(self.ev.visit_id(m.index), None)
            elif m.kind == "opportunity":
                out += self.part(self.ev.crm_id("opportunities", m.ref), "competitors")
            if len(out) >= limit:
                break
        return out

    def task(self, title: str, days: int, notes: str = "") -> ProposedChange:
        due = (self.facts.as_of + timedelta(days=days)).isoformat()
        fields = {
            "customer_id": self.c.id,
            "title": title,
            "due": due,
            "owner_user_id": self.c.owner_user_id,
            "notes": notes,
        }
        return ProposedChange("create_task", fields)

    @staticmethod
    def where(mentions: list[Mention]) -> str:
        m = mentions[0]
        if m.kind == "memo":
            return f"最新拜访录音 {m.ref} 中"
        if m.kind == "visit":
            return f"{m.ref} 的拜访记录中"
        return f"在谈商机 {m.ref} 的竞品信息中"


def draft_for_trigger(trig: Trigger, ev: EvidenceSet) -> Draft | None:
    b, rule, data = _Builder(ev), trig.rule, trig.data
    rule_note = f"依据规则：{rule.description}"
    reason = b.passage(trig, "reason")
    due_days = int(rule.param("due_in_days", 3))
    bonus = 0.05 if reason else 0.0
    if rule.kind == "visit_cadence":
        v = b.facts.latest_visit
        fact = f"最近一次拜访是 {v.date}，至今 {data['days']} 天" if v else "CRM 中没有拜访记录"
        return Draft(
            rule.action_type,
            f"安排关怀拜访：{b.short}（{data['tier']} 类客户）已超过 {data['cadence']} 天拜访周期",
            f"{fact}，超过 {data['tier']} 类客户 {data['cadence']} 天的拜访周期。{rule_note}",
            0.8 + bonus,
            (*b.part(ev.crm_id("visits", "latest"), "summary"), *reason),
            b.task(f"关怀拜访：{b.short}", due_days),
            rule.id,
        )
    if rule.kind == "purchase_decline":
        eid = ev.crm_id("purchases", next((loc for f, loc in ev.crm if f == "purchases"), ""))
        months = data["months"]
        tail = "；".join(
            p for p in (ev.parts.get(eid, {}).get("pieces") or "").split("；") if p.split(" ")[0] in months
        )
        drops = "、".join(f"{c:+.1f}%" for c in data["changes"])
        return Draft(
            rule.action_type,
            f"关怀任务：{b.short} 月度采购额连续 {len(months)} 个月环比下降",
            f"{months[0]} 至 {months[-1]} 采购额环比变化 {drops}。建议安排关怀拜访了解原因（门店调整、预算变化、竞品替代等）。{rule_note}",
            0.8 + bonus,
            (*b.claim(eid, tail or None), *reason),
            b.task(f"关怀拜访：了解 {b.short} 采购额下降原因", due_days),
            rule.id,
        )
    if rule.kind == "stage_stall":
        opp = data["opportunity"]
        return Draft(
            rule.action_type,
            f"升级推进：商机「{opp.name}」在「{opp.stage}」阶段已停留 {data['days']} 天",
            f"该商机 {opp.stage_entered} 进入「{opp.stage}」，已超过 {data['limit']} 天未推进。建议升级至区域经理或请售前专家支持，共同制定推进计划。{rule_note}",
            0.75 + bonus,
            (*b.part(ev.crm_id("opportunities", opp.id), "stage"), *reason),
            b.task(f"升级：与区域经理制定「{opp.name}」推进计划", due_days),
            rule.id,
        )
    if rule.kind == "overdue_task":
        task = data["task"]
        return Draft(
            str(data.get("action_type") or rule.action_type),
            f"跟进逾期任务：{task.title}（已逾期 {data['days']} 天）",
            f"该任务截止 {task.due}，至今未完成。建议尽快联系客户说明情况并完成，同时在 CRM 中更新任务状态。{rule_note}",
            0.85 + bonus,
            (*b.part(ev.crm_id("tasks", task.id), "status"), *reason),
            b.task(f"完成逾期任务：{task.title}", due_days),
            rule.id,
        )
    if rule.kind == "objection":
        kind = data["objection"]
        expert = rule.action_type == "involve_expert"  # a specialist is needed; documents only help
        said = tuple(dict.fromkeys(m.keyword for m in data["mentions"])) if expert else ()
        material = b.passage(trig, "material", (*said, str(kind)))
        case = b.passage(trig, "case", (b.c.industry or "",))
        if not material and not case and not expert:
            return None
        names = [ev.items[c.evidence_id].label for c in (*material, *case)]
        docs = "、".join(dict.fromkeys(re.sub(r"^依据(《[^》]*》).*$", r"\1", n) for n in names))
        if expert:
            asked = "、".join(said) or kind
            title = f"请售前/技术专家支持：解答客户关于{asked}的问题"
            task = b.task(f"邀请售前/技术专家参与下次沟通，解答{asked}问题" + (f"（参考{docs}）" if docs else ""),
                          due_days)  # fmt: skip
        else:
            title, task = f"应对{kind}异议：发送{docs}", b.task(f"发送{kind}异议资料：{docs}", due_days)
        return Draft(
            rule.action_type,
            title,
            f"{b.where(data['mentions'])}客户提出{kind}方面的顾虑。{rule_note}",
            0.75 + bonus,
            (*b.mentions(data["mentions"]), *material, *case, *reason),
            task,
            rule.id,
        )
    if rule.kind == "competitor":
        material = b.passage(trig, "material", (data["competitor"],))
        if not material:
            return None
        doc = re.sub(r"^依据(《[^》]*》).*$", r"\1", ev.items[material[0].evidence_id].label)
        return Draft(
            rule.action_type,
            f"竞品应对：{data['competitor']}，使用{doc}",
            f"{b.where(data['mentions'])}出现竞品「{data['competitor']}」。{rule_note}",
            0.7 + bonus,
            (*b.mentions(data["mentions"]), *material, *reason),
            b.task(f"准备{data['competitor']}竞品对比材料（{doc}）", due_days),
            rule.id,
        )
    if rule.kind == "discount_request":
        tier = str(data["tier"])
        cap = ev.discount_caps.get(tier)
        policy = b.passage(trig, "policy", (f"{tier}类", f"{tier} 类"))
        limit = (
            f"现行价格政策 {tier} 类客户折扣上限为 {cap:g}%"
            if cap is not None
            else "折扣须以现行价格政策为准"
        )
        return Draft(
            rule.action_type,
            f"按现行价格政策答复折扣诉求（{tier} 类客户上限 {cap:g}%）"
            if cap is not None
            else "按现行价格政策答复折扣诉求",
            f"{b.where(data['mentions'])}客户提出折扣要求。{limit}，超出部分须走特批，不得口头承诺。{rule_note}",
            0.7 + (0.05 if policy else 0.0),
            (*b.mentions(data["mentions"], limit=1), *policy, *reason),
            b.task("按现行价格政策准备折扣答复与报价", due_days),
            rule.id,
        )
    return None


def plan_offline(ev: EvidenceSet, *, note: str | None = None) -> PlanResult:
    drafts = [d for d in (draft_for_trigger(t, ev) for t in ev.triggers) if d is not None]
    return finalize(drafts, ev, mode="offline", note=note)


def offline_drafts(ev: EvidenceSet) -> list[Draft]:
    return [d for d in (draft_for_trigger(t, ev) for t in ev.triggers) if d is not None]


__all__ = [
    "Draft",
    "PlanResult",
    "clean_change",
    "discount_mentions",
    "finalize",
    "fingerprint",
    "offline_drafts",
    "pick_sentence",
    "plan_offline",
    "vet",
]
