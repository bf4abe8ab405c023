"""Rule drafts written by a chat model through structured output, then checked like any untrusted text.

    drafts = llm_rule_drafts(llm, "rules/sales_policy.md", text)

The document goes in as numbered sentences (``S1``…); the model answers ``{"rules": [{"sentence",
"quote", "expression", "action_type", "description"}]}`` (JSON schema, one repair turn). A draft is kept
only when its expression parses in the condition language, its action type is known, and its quote is
found verbatim in the cited sentence (else, anywhere in the document); the citation shown is the whole
verbatim sentence. Everything else is dropped. ``merge_drafts`` puts these after the offline pattern
drafts (``rule_drafts.draft_rules``), skipping a model draft whose sentence or expression a pattern draft
already covers. A failed call returns ``[]``: the offline drafts stand alone.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from importlib import resources
from typing import Any

from copilot.agent.conditions import CATALOGUE, check_condition
from copilot.agent.rule_drafts import RuleDraft, draft_id, sentences
from copilot.domain import ACTION_TYPES
from copilot.infra.llm.chat_model import ChatModel, OutputSchema
from copilot.infra.llm.structured import StructuredFailure, ask_json

logger = logging.getLogger(__name__)

PATH = "suggest"  # a manager waits on the page: the suggest path's time budget
MAX_SENTENCES = 200
MAX_RULES = 12
SCHEMA = OutputSchema(
    "rule_drafts",
    {
        "type": "object",
        "properties": {
            "rules": {
                "type": "array",
                "maxItems": MAX_RULES,
                "items": {
                    "type": "object",
                    "properties": {
                        "sentence": {"type": "string"},
                        "quote": {"type": "string"},
                        "expression": {"type": "string"},
                        "action_type": {"type": "string", "enum": list(ACTION_TYPES)},
                        "description": {"type": "string"},
                    },
                    "required": ["sentence", "quote", "expression", "action_type", "description"],
                },
            }
        },
        "required": ["rules"],
    },
)


def system_prompt() -> str:
    return resources.files("copilot.agent.prompts").joinpath("rule_drafts.md").read_text(encoding="utf-8")


def _language() -> str:
    lines = [f"{k}：{v}" for k, v in CATALOGUE.variables.items()]
    for scope, fields in CATALOGUE.scopes.items():
        lines += [f"{scope}.{k}：{v}" for k, v in fields.items()]
    lines += [v for v in CATALOGUE.functions.values()]
    return "\n".join(lines)


def user_message(source: str, numbered: Sequence[str]) -> str:
    body = "\n".join(f"S{i}: {s}" for i, s in enumerate(numbered, start=1))
    return (
        f"<language>\n{_language()}\n</language>\n\n"
        f'<document source="{json.dumps(source, ensure_ascii=False)[1:-1]}">\n{body}\n</document>'
    )


def _parse(data: Any) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise ValueError("须是含 rules 数组的 JSON 对象")
    return [r for r in data["rules"] if isinstance(r, dict)]


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text or "")


def checked_drafts(source: str, text: str, answer: Sequence[dict[str, Any]]) -> list[RuleDraft]:
    """The model's rules that survive the checks, as drafts citing their verbatim sentence."""
    numbered = sentences(text)[:MAX_SENTENCES]
    out: list[RuleDraft] = []
    seen: set[tuple[str, str]] = set()
    for raw in answer[:MAX_RULES]:
        expression = str(raw.get("expression") or "").strip()
        action = str(raw.get("action_type") or "").strip()
        quote = _squash(str(raw.get("quote") or ""))
        if not expression or check_condition(expression) is not None or action not in ACTION_TYPES:
            continue
        if len(quote) < 6:
            continue
        ref = re.fullmatch(r"[Ss]?(\d{1,4})", str(raw.get("sentence") or "").strip())
        cited = numbered[int(ref.group(1)) - 1] if ref and 0 < int(ref.group(1)) <= len(numbered) else None
        if cited is None or quote not in _squash(cited):
            cited = next((s for s in numbered if quote in _squash(s)), None)  # cited by the wrong number
        if cited is None:
            continue  # a quote the document does not contain: fabricated
        if (expression, action) in seen:
            continue
        seen.add((expression, action))
        description = str(raw.get("description") or "").strip()[:80] or cited.rstrip("。；;")[:80]
        out.append(RuleDraft(draft_id(source, expression, action), expression, action, description,
                             {"source": source, "quote": cited}, f"llm:{cited[:40]}"))  # fmt: skip
    return out


def llm_rule_drafts(llm: ChatModel, source: str, text: str) -> list[RuleDraft]:
    """Drafts from the model for one document, checked; ``[]`` when the model gives nothing usable."""
    numbered = sentences(text)[:MAX_SENTENCES]
    if not numbered:
        return []
    try:
        answer, repaired = ask_json(
            llm, path=PATH, system=system_prompt(), user=user_message(source, numbered), schema=SCHEMA,
            parse=_parse, max_tokens=1500,
        )  # fmt: skip
    except StructuredFailure as exc:
        llm.record(PATH, exc.reason)
        logger.info("rule drafts by model failed (%s); offline drafts only", exc.reason)
        return []
    llm.record(PATH, "repaired" if repaired else "accepted")
    drafts = checked_drafts(source, text, answer)
    logger.info("rule drafts by model: %d of %d kept", len(drafts), len(answer))
    return drafts


def merge_drafts(offline: Sequence[RuleDraft], model: Sequence[RuleDraft]) -> list[RuleDraft]:
    """Pattern drafts first; a model draft is added when no pattern draft has its sentence or expression."""
    sentences_ = {_squash(d.citation.get("quote", "")) for d in offline}
    expressions = {_squash(d.expression) for d in offline}
    out = list(offline)
    for d in model:
        if _squash(d.citation.get("quote", "")) in sentences_ or _squash(d.expression) in expressions:
            continue
        out.append(d)
        expressions.add(_squash(d.expression))
    return out
