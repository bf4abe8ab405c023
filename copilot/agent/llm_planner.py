"""The LLM planner: evidence goes to the model as fenced, numbered data; the model answers in a JSON
schema citing evidence ids with verbatim quotes; everything it says is validated and vetted.

A failed call or an unusable answer falls back to the offline planner with a note, never to an
error. Rules the manager configured that the model left uncovered are added from the offline plan.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from typing import Any

from copilot.agent.citations import ClaimedCitation, short_name
from copilot.agent.drafting import Draft
from copilot.agent.evidence import EvidenceSet
from copilot.agent.offline_planner import PlanResult, clean_change, finalize, offline_drafts
from copilot.domain import ACTION_TYPES
from copilot.infra.llm.chat_model import ChatModel, LLMError

logger = logging.getLogger(__name__)
MAX_SUGGESTIONS = 6
NOTE_FAILED = "大模型服务暂不可用，以下为离线规划的建议。"
NOTE_MALFORMED = "大模型返回格式异常，以下为离线规划的建议。"
NOTE_UNGROUNDED = "大模型的建议缺少可核验的引用，以下为离线规划的建议。"


def prompt() -> str:
    return resources.files("copilot.agent.prompts").joinpath("suggest.md").read_text(encoding="utf-8")


def _attr(value: str) -> str:
    return value.replace('"', "'").replace("<", "‹").replace(">", "›")


def render_user_message(ev: EvidenceSet, drafts: list[Draft]) -> str:
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
    fired = [f"- {d.rule_id}：{d.title}" for d in drafts] or ["- （无）"]
    items = [
        f'<item id="{e.id}" kind="{e.kind}" label="{_attr(e.label)}">\n{e.text}\n</item>'
        for e in ev.items.values()
    ]
    return (
        "<facts>\n" + "\n".join(facts) + "\n</facts>\n\n"
        "<rules_fired>\n" + "\n".join(fired) + "\n</rules_fired>\n\n"
        "<evidence>\n" + "\n".join(items) + "\n</evidence>\n\n"
        "请给出该客户的下一步行动建议（JSON）。"
    )


def parse_answer(raw: str, customer_id: str) -> list[Draft]:
    """The model's JSON → drafts; ValueError when it is not the agreed shape."""
    text = raw.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    data = json.loads(text)
    items: Any = data.get("suggestions") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ValueError("no suggestions list")
    drafts = []
    for item in items[:MAX_SUGGESTIONS]:
        if not isinstance(item, dict):
            continue
        title = str(item.get("title") or "").strip()
        if not title:
            continue
        action = str(item.get("action_type") or "other")
        try:
            confidence = float(item.get("confidence") or 0.5)
        except (TypeError, ValueError):
            confidence = 0.5
        claims = tuple(
            ClaimedCitation(str(c.get("evidence_id", "")), str(c.get("quote", "")))
            for c in item.get("citations") or []
            if isinstance(c, dict)
        )
        drafts.append(
            Draft(
                action_type=action if action in ACTION_TYPES else "other",
                title=title,
                rationale=str(item.get("rationale") or ""),
                confidence=confidence,
                claims=claims,
                proposed_change=clean_change(item.get("proposed_change"), customer_id),
                rule_id="llm",
            )
        )
    return drafts


def plan_llm(ev: EvidenceSet, llm: ChatModel) -> PlanResult:
    rules = offline_drafts(ev)
    try:
        raw = llm.complete(prompt(), render_user_message(ev, rules), json_mode=True)
        drafts = parse_answer(raw, ev.facts.customer.id)
    except LLMError:
        return finalize(rules, ev, mode="offline", note=NOTE_FAILED)
    except (ValueError, TypeError, AttributeError):  # json.JSONDecodeError is a ValueError
        logger.warning("llm suggestions unparseable for customer %s; offline fallback", ev.facts.customer.id)
        return finalize(rules, ev, mode="offline", note=NOTE_MALFORMED)
    result = finalize(drafts, ev, mode="llm")
    if not result.suggestions:
        fallback = finalize(rules, ev, mode="offline", note=NOTE_UNGROUNDED)
        fallback.dropped_citations += result.dropped_citations
        fallback.unsafe = result.unsafe + fallback.unsafe
        return fallback
    covered = {s.action_type for s in result.suggestions}
    extra = finalize([d for d in rules if d.action_type not in covered], ev, mode="offline")
    result.suggestions += extra.suggestions
    result.dropped_citations += extra.dropped_citations
    result.dropped_suggestions += extra.dropped_suggestions
    result.unsafe += extra.unsafe
    if result.dropped_citations or result.unsafe:
        logger.info(
            "llm plan for customer %s: %d citations dropped, %d unsafe suggestions dropped",
            ev.facts.customer.id,
            result.dropped_citations,
            len(result.unsafe),
        )
    return result
