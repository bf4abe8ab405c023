"""The LLM planner: evidence goes to the model as fenced, numbered data (trimmed to the prompt budget);
the model answers in a JSON schema citing evidence ids (plus, optionally, a short phrase) and the code
picks the verbatim span to show; everything it says is validated and vetted.

A failed call or an unusable answer falls back to the offline planner with a note, never to an
error, and the outcome is counted by reason. Rules the manager configured that the model left uncovered
are added from the offline plan.
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

from copilot.agent.citations import ClaimedCitation, short_name
from copilot.agent.drafting import Draft, pick_sentence
from copilot.agent.evidence import EvidenceSet
from copilot.agent.offline_planner import PlanResult, clean_change, finalize, offline_drafts
from copilot.domain import ACTION_TYPES, CHANGE_OPS
from copilot.infra.llm.budget import estimate_tokens, fit
from copilot.infra.llm.chat_model import SUGGEST, ChatModel, OutputSchema
from copilot.infra.llm.structured import StructuredFailure, ask_json

logger = logging.getLogger(__name__)
MAX_SUGGESTIONS = 6
MAX_ANSWER_TOKENS = 1000
MAX_LLM_SUGGESTIONS = 4  # the schema bounds what the model writes; uncovered rules are added offline
NOTE_FAILED = "大模型服务暂不可用，以下为离线规划的建议。"
NOTE_TIMEOUT = "大模型服务暂不可用（响应超时），以下为离线规划的建议。"
NOTE_MALFORMED = "大模型返回格式异常，以下为离线规划的建议。"
NOTE_UNGROUNDED = "大模型的建议缺少可核验的引用，以下为离线规划的建议。"
NOTE_UNSAFE = "大模型的建议未通过安全检查，以下为离线规划的建议。"
NOTE_EMPTY = "大模型没有给出建议，以下为离线规划的建议。"
NOTES = {"timeout": NOTE_TIMEOUT, "malformed": NOTE_MALFORMED, "ungrounded": NOTE_UNGROUNDED,
         "unsafe": NOTE_UNSAFE, "empty": NOTE_EMPTY}  # fmt: skip


def prompt() -> str:
    return resources.files("copilot.agent.prompts").joinpath("suggest.md").read_text(encoding="utf-8")


def _attr(value: str) -> str:
    return value.replace('"', "'").replace("<", "‹").replace(">", "›")


def _facts(ev: EvidenceSet) -> list[str]:
    c = ev.facts.customer
    facts = [
        f"今天：{ev.facts.as_of.isoformat()}（此日期之后的记录已忽略）",
        f"客户：{short_name(c.name)}（{c.id}），{c.tier or '未分级'} 类，行业：{c.industry or '—'}",
    ]
    cap = ev.discount_caps.get(c.tier or "")
    facts.append(
        f"现行价格政策允许该客户的最高折扣：{cap:g}%"
        if cap is not None
        else "现行价格政策允许的折扣上限：未知（不得提出任何具体折扣）"
    )
    return facts


def render_user_message(ev: EvidenceSet, drafts: list[Draft], texts: dict[str, str] | None = None) -> str:
    """The prompt's data; ``texts`` (evidence id → trimmed text) limits and trims the items shown."""
    fired = [f"- {d.rule_id}：{d.title}" for d in drafts] or ["- （无）"]
    shown = (
        [(e, texts[e.id]) for e in ev.items.values() if e.id in texts]
        if texts is not None
        else [(e, e.text) for e in ev.items.values()]
    )
    items = [
        f'<item id="{e.id}" kind="{e.kind}" label="{_attr(e.label)}">\n{text}\n</item>' for e, text in shown
    ]
    return (
        "<facts>\n" + "\n".join(_facts(ev)) + "\n</facts>\n\n"
        "<rules_fired>\n" + "\n".join(fired) + "\n</rules_fired>\n\n"
        "<evidence>\n" + "\n".join(items) + "\n</evidence>\n\n"
        "请给出该客户的下一步行动建议（JSON）。"
    )


def budgeted_texts(ev: EvidenceSet, drafts: list[Draft], context_tokens: int) -> dict[str, str]:
    """Evidence id → the text shown, within the budget: items the fired rules cite come first, then
    CRM records, memo segments and passages in their order."""
    cited = {c.evidence_id for d in drafts for c in d.claims}
    rank = {"crm": 1, "memo": 2, "kb": 3}
    order = sorted(ev.items.values(), key=lambda e: (e.id not in cited, rank.get(e.kind, 4)))
    fixed = render_user_message(ev, drafts, {})
    overhead = estimate_tokens(prompt()) + estimate_tokens(fixed) + 30 * len(order) + 64
    kept = fit([e.text for e in order], max(0, context_tokens - overhead - MAX_ANSWER_TOKENS))
    return {e.id: text for e, text in zip(order, kept, strict=True) if text is not None}


def suggestions_schema(ids: list[str]) -> OutputSchema:
    citation = {
        "type": "object",
        "properties": {
            "evidence_id": {"type": "string", "enum": ids},
            "phrase": {"type": "string", "maxLength": 30},
        },
        "required": ["evidence_id", "phrase"],
    }
    change = {
        "type": "object",
        "properties": {
            "op": {"type": "string", "enum": list(CHANGE_OPS)},
            "fields": {
                "type": "object",
                "properties": {
                    k: {"type": "string"} for k in ("title", "due", "notes", "stage", "opportunity_id")
                },
            },
        },
        "required": ["op", "fields"],
    }
    item = {
        "type": "object",
        "properties": {
            "action_type": {"type": "string", "enum": list(ACTION_TYPES)},
            "title": {"type": "string", "minLength": 4, "maxLength": 40},
            "rationale": {"type": "string", "maxLength": 200},
            "confidence": {"type": "number"},
            "citations": {"type": "array", "minItems": 1, "maxItems": 3, "items": citation},
            "proposed_change": {"anyOf": [change, {"type": "null"}]},
        },
        "required": ["action_type", "title", "rationale", "citations"],
    }
    return OutputSchema(
        "next_steps",
        {
            "type": "object",
            "properties": {"suggestions": {"type": "array", "maxItems": MAX_LLM_SUGGESTIONS, "items": item}},
            "required": ["suggestions"],
        },
    )


def _claims(raw: Any) -> tuple[ClaimedCitation, ...]:
    out = []
    for c in raw if isinstance(raw, list) else []:
        if isinstance(c, str):
            out.append(ClaimedCitation(c.strip()))
        elif isinstance(c, dict):
            quote = c.get("quote")
            out.append(
                ClaimedCitation(
                    str(c.get("evidence_id") or "").strip(),
                    quote if isinstance(quote, str) else None,
                    str(c.get("phrase") or "")[:80],
                )
            )
    return tuple(out)


# Words of the prompt's format description: a suggestion made of them copied the format.
_TEMPLATE_WORDS = ("建议标题", "你写的", "该编号资料", "一个短语")


def parse_answer(data: Any, customer_id: str) -> list[Draft]:
    """The model's decoded JSON → drafts; ValueError when it is not the agreed shape (the message goes
    back to the model in the repair turn)."""
    items: Any = data.get("suggestions") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ValueError("缺少 suggestions 数组")
    drafts = []
    for item in items[:MAX_SUGGESTIONS]:
        if not isinstance(item, dict):
            continue
        title = str(item.get("title") or "").strip()
        if not title:
            continue
        if any(w in f"{title}{item.get('rationale') or ''}" for w in _TEMPLATE_WORDS):
            raise ValueError("title/rationale 照抄了格式说明，请根据资料写出具体建议")
        action = str(item.get("action_type") or "other")
        try:
            confidence = float(item.get("confidence") or 0.5)
        except (TypeError, ValueError):
            confidence = 0.5
        drafts.append(
            Draft(
                action_type=action if action in ACTION_TYPES else "other",
                title=title,
                rationale=str(item.get("rationale") or ""),
                confidence=confidence,
                claims=_claims(item.get("citations")),
                proposed_change=clean_change(item.get("proposed_change"), customer_id),
                rule_id="llm",
            )
        )
    if items and not drafts:
        raise ValueError("每条建议都需要非空的 title")
    return drafts


def _span_for(ev: EvidenceSet):
    """A claim cited without a usable phrase shows the item's best sentence (CRM records: the record)."""
    return lambda e: e.text if e.kind == "crm" and len(e.text) <= 160 else pick_sentence(e.text)


def _uncovered(rules: list[Draft], result: PlanResult, ev: EvidenceSet) -> list[Draft]:
    """The rule drafts the model's plan does not cover. A rule is covered only by a suggestion of its
    action type that cites the rule's trigger (its first evidence): a model that proposes the right kind
    of step on the wrong grounds (measured with a 0.5B model: action type right in 3/3 cases, evidence
    in 0/3) must not crowd out the manager's rule and the facts that fired it."""
    cited = {(s.action_type, c.kind, c.ref) for s in result.suggestions for c in s.citations}
    out = []
    for d in rules:
        trigger = ev.items.get(d.claims[0].evidence_id) if d.claims else None
        if trigger is None or (d.action_type, trigger.kind, trigger.ref) not in cited:
            out.append(d)
    return out


def plan_llm(ev: EvidenceSet, llm: ChatModel) -> PlanResult:
    rules = offline_drafts(ev)
    customer_id = ev.facts.customer.id
    texts = budgeted_texts(ev, rules, int(getattr(llm, "context_tokens", 4096)))
    try:
        drafts, repaired = ask_json(
            llm,
            path=SUGGEST,
            system=prompt(),
            user=render_user_message(ev, rules, texts),
            schema=suggestions_schema(list(texts)),
            parse=lambda data: parse_answer(data, customer_id),
            max_tokens=MAX_ANSWER_TOKENS,
        )
    except StructuredFailure as exc:
        logger.warning(
            "llm suggestions for customer %s unusable (%s); offline fallback", customer_id, exc.reason
        )
        llm.record(SUGGEST, exc.reason)
        return finalize(rules, ev, mode="offline", note=NOTES.get(exc.reason, NOTE_FAILED))
    result = finalize(drafts, ev, mode="llm", fallback=_span_for(ev))
    if not result.suggestions:
        reason = (
            "empty"
            if not drafts
            else "unsafe"
            if result.unsafe and not result.dropped_citations
            else "ungrounded"
        )
        llm.record(SUGGEST, reason)
        fallback = finalize(rules, ev, mode="offline", note=NOTES[reason])
        fallback.dropped_citations += result.dropped_citations
        fallback.unsafe = result.unsafe + fallback.unsafe
        return fallback
    llm.record(SUGGEST, "repaired" if repaired else "accepted")
    extra = finalize(_uncovered(rules, result, ev), ev, mode="offline")
    result.suggestions += extra.suggestions
    result.dropped_citations += extra.dropped_citations
    result.dropped_suggestions += extra.dropped_suggestions
    result.unsafe += extra.unsafe
    if result.dropped_citations or result.unsafe:
        logger.info(
            "llm plan for customer %s: %d citations dropped, %d unsafe suggestions dropped",
            customer_id,
            result.dropped_citations,
            len(result.unsafe),
        )
    return result
