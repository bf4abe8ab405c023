"""Structured answers: ask with a JSON schema, parse tolerantly, repair once, or say why not.

    value, repaired = ask_json(llm, path="chat", system=..., user=..., schema=SCHEMA, parse=to_answer)

``parse`` turns the decoded JSON into the caller's value and raises ``ValueError`` (or ``TypeError``/
``KeyError``) with a short message when it is not the agreed shape; that message goes back to the model
in the one repair turn. ``StructuredFailure.reason`` is ``malformed`` after a failed repair, else the
``LLMError`` reason of the call that failed (``timeout``, ``unavailable``, ``refused``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

from copilot.infra.llm.chat_model import ChatModel, LLMError, OutputSchema

T = TypeVar("T")
REPAIR = (
    "你上一次的输出不符合要求：{error}\n"
    "请重新输出：只输出一个符合上述格式的 JSON 对象，不要任何解释、不要代码块标记。"
)
REPAIR_TEMPERATURE = 0.7
MAX_ECHO_CHARS = 4000  # the bad answer sent back in the repair turn is cut to this

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_SMART_QUOTES = str.maketrans({"“": '"', "”": '"'})


class StructuredFailure(Exception):
    """No usable structured answer; ``reason`` names why (counted in /metrics)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _first_object(text: str) -> str | None:
    """The first balanced ``{…}`` in ``text`` (strings and escapes respected), or None."""
    start = text.find("{")
    while start >= 0:
        depth, in_str, esc = 0, False, False
        for i in range(start, len(text)):
            ch = text[i]
            if in_str:
                if esc:
                    esc = False
                elif ch == "\\":
                    esc = True
                elif ch == '"':
                    in_str = False
            elif ch == '"':
                in_str = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return text[start : i + 1]
        start = text.find("{", start + 1)
    return None


def loads_tolerant(raw: str) -> Any:
    """JSON from what models actually send: code fences, prose around the object, trailing commas."""
    text = (raw or "").strip().lstrip("\ufeff")
    if not text:
        raise ValueError("输出为空")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    fenced = _FENCE.search(text)
    candidates = [fenced.group(1).strip()] if fenced else []
    obj = _first_object(text)
    if obj:
        candidates.append(obj)
    for candidate in candidates:
        for variant in (candidate, _TRAILING_COMMA.sub(r"\1", candidate)):
            try:
                return json.loads(variant)
            except json.JSONDecodeError:
                continue
        try:  # curly quotes used as JSON quotes (never inside a valid answer's values: those stay)
            return json.loads(_TRAILING_COMMA.sub(r"\1", candidate.translate(_SMART_QUOTES)))
        except json.JSONDecodeError:
            continue
    raise ValueError("不是合法的 JSON 对象")


def ask_json(
    llm: ChatModel,
    *,
    path: str,
    system: str,
    user: str,
    schema: OutputSchema,
    parse: Callable[[Any], T],
    max_tokens: int | None = None,
) -> tuple[T, bool]:
    """``(value, repaired)``; raises ``StructuredFailure`` when there is none."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    raw = _chat(llm, messages, path=path, schema=schema, max_tokens=max_tokens)
    try:
        return parse(loads_tolerant(raw)), False
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        error = _describe(exc)
    messages += [
        {"role": "assistant", "content": raw[:MAX_ECHO_CHARS]},
        {"role": "user", "content": REPAIR.format(error=error)},
    ]
    # A little more temperature: a small model otherwise repeats the same answer word for word.
    raw = _chat(
        llm, messages, path=path, schema=schema, max_tokens=max_tokens, temperature=REPAIR_TEMPERATURE
    )
    try:
        return parse(loads_tolerant(raw)), True
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise StructuredFailure("malformed", _describe(exc)) from None


def _chat(llm: ChatModel, messages: list[dict[str, str]], **kwargs: Any) -> str:
    try:
        return llm.chat(messages, **kwargs)
    except LLMError as exc:
        raise StructuredFailure(exc.reason, exc.detail) from None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"缺少字段 {exc.args[0]!r}" if exc.args else "缺少字段"
    return str(exc)[:300] or type(exc).__name__
