"""A chat turn answered by a model that calls tools (``tools.py``), bounded in rounds and in time.

    messages = system prompt + the last turns (budgeted) + this message with the focus customer
    loop ≤ MAX_ROUNDS: the model answers, or asks for tools; each tool runs as the user
    the final text → citations by reference to evidence returned in THIS turn (verbatim spans picked
    by the code; anything unresolvable dropped and counted), write claims removed, unsafe → fallback

Any failure raises ``ToolLoopFailed(reason)``; the conversation then answers the way it does without
tools (``tools_unsupported``: the single-shot LLM answer, then offline; otherwise offline), and the
reason is counted in ``copilot_llm_fallbacks_total{path="chat_tools"}``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from copilot.agent.answer import (
    MAX_ANSWER_TOKENS,
    best_quote,
    marker_claims,
    parse_answer,
    renumber,
    unsafe_reason,
    used_claims,
)
from copilot.agent.citations import ClaimedCitation, Evidence, supported_span, validate
from copilot.agent.offline_planner import discount_mentions
from copilot.agent.safety import looks_like_injection
from copilot.domain import Citation
from copilot.features.chat.tools import TOOLS, ToolBox
from copilot.infra.llm.budget import estimate_tokens, fit
from copilot.infra.llm.chat_model import LLMError

logger = logging.getLogger(__name__)

PATH = "chat_tools"  # the metrics label of this path's outcomes
MAX_ROUNDS = 4  # model calls per turn (the last one must answer)
MAX_CALLS_PER_ROUND = 4
HISTORY_TOKENS = 600
# 「已为您创建」「已写入 CRM」: the model cannot write, so such a sentence is never true.
_WRITE_CLAIM = re.compile(
    r"(已经?|已为您|已帮您|已给您|我已)(为您|帮您|给您)?(成功)?(创建|新建|建好|建立|写入|录入|记录|添加|更新|修改|改为|改成|安排好|提交|同步)"
    r"|(写入|同步|提交|更新)(了|到)\s*CRM|CRM\s*(中|里)?已(更新|写入|创建)"
)
_SENTENCE = re.compile(r"[^。！？!?\n]+[。！？!?\n]?")


class ToolLoopFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ToolAnswer:
    text: str
    citations: tuple[Citation, ...]
    dropped: int


def system_prompt() -> str:
    return resources.files("copilot.agent.prompts").joinpath("chat_tools.md").read_text(encoding="utf-8")


def history_messages(turns: Sequence[dict[str, Any]], budget: int = HISTORY_TOKENS) -> list[dict[str, str]]:
    """The last turns, newest kept first when the budget is short (texts trimmed to a prefix)."""
    recent = [t for t in turns if t.get("role") in ("user", "assistant") and t.get("text")]
    kept = fit([t["text"] for t in reversed(recent)], budget, min_tokens=20)
    out = [
        {"role": t["role"], "content": text} for t, text in zip(reversed(recent), kept, strict=True) if text
    ]
    return list(reversed(out))


def run(
    llm: Any,
    *,
    message: str,
    context: str,
    history: list[dict[str, str]],
    toolbox: ToolBox,
    timeout_s: float,
    needs_citations: bool,
    max_rounds: int = MAX_ROUNDS,
    on_delta: Callable[[str], None] | None = None,
) -> ToolAnswer:
    """The model's answer, checked; raises ToolLoopFailed."""
    deadline = time.monotonic() + timeout_s
    user = f"{context}\n\n销售的消息：{message.strip()}" if context else message.strip()
    messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt()}, *history,
                                      {"role": "user", "content": user}]  # fmt: skip
    toolbox.result_tokens = _result_budget(llm, messages, max_rounds)
    stripper = StreamFilter(on_delta) if on_delta is not None else None
    for _round in range(max_rounds):
        remaining = deadline - time.monotonic()
        if remaining < 0.3:
            raise ToolLoopFailed("timeout")
        try:
            turn = llm.chat_tools(messages, TOOLS, timeout_s=remaining, max_tokens=MAX_ANSWER_TOKENS,
                                  on_delta=stripper)  # fmt: skip
        except LLMError as exc:
            raise ToolLoopFailed(exc.reason) from None
        if stripper is not None:
            stripper.flush()
        if not turn.tool_calls and _round == 0:
            raise ToolLoopFailed("no_tool_calls")  # an endpoint that ignores ``tools``: single-shot instead
        if not turn.tool_calls:
            return finish(turn.content, toolbox, needs_citations=needs_citations)
        messages.append(turn.as_message())
        for call in turn.tool_calls[:MAX_CALLS_PER_ROUND]:
            messages.append({"role": "tool", "tool_call_id": call.id, "content": toolbox.run(call.name, call.arguments)})  # fmt: skip
        for call in turn.tool_calls[MAX_CALLS_PER_ROUND:]:
            messages.append({"role": "tool", "tool_call_id": call.id,
                             "content": json.dumps({"error": "too_many_calls"})})  # fmt: skip
    raise ToolLoopFailed("max_rounds")


def _result_budget(llm: Any, messages: list[dict[str, Any]], max_rounds: int) -> int:
    used = sum(estimate_tokens(str(m.get("content") or "")) for m in messages) + 400  # + tool schemas
    room = int(getattr(llm, "context_tokens", 4096)) - used - MAX_ANSWER_TOKENS
    return max(200, room // max(1, max_rounds - 1))


def finish(content: str, toolbox: ToolBox, *, needs_citations: bool) -> ToolAnswer:
    """Final text → shown text and citations resolved against this turn's evidence."""
    text, claims = _parse(content)
    text = drop_write_claims(text)
    evidence = toolbox.evidence
    claims += marker_claims(text, {c.evidence_id for c in claims})
    claims += used_claims(text, list(evidence.values()), {c.evidence_id for c in claims})

    def quote_for(e: Evidence) -> str:
        return supported_span(text, e.text) or best_quote(e.text)

    citations, dropped = validate(claims, evidence, fallback=quote_for)
    if dropped:
        logger.info("dropped %d unverifiable citations", len(dropped))
    cited_refs = list(dict.fromkeys(c.ref for c in citations))
    reason = unsafe_reason(text, [e for e in evidence.values() if e.ref in cited_refs])
    if reason:
        logger.warning("tool answer rejected: %s", reason)
        raise ToolLoopFailed("unsafe")
    if needs_citations and not citations and toolbox.proposed is None:
        raise ToolLoopFailed("ungrounded")
    if not text.strip() and toolbox.proposed is None:
        raise ToolLoopFailed("empty")
    order = {eid: cited_refs.index(e.ref) + 1 for eid, e in evidence.items() if e.ref in cited_refs}
    seen: set[str] = set()
    shown = []
    for c in citations:  # one citation per evidence item: the numbers in the text are per item
        if c.ref not in seen:
            seen.add(c.ref)
            shown.append(c)
    return ToolAnswer(renumber(text, order), tuple(shown), len(dropped))


def _parse(content: str) -> tuple[str, list[ClaimedCitation]]:
    """Plain text with ``[E1]`` markers, or the JSON answer of the single-shot path."""
    stripped = content.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None
        if isinstance(data, dict) and "answer" in data:
            try:
                return parse_answer(data)
            except ValueError:
                raise ToolLoopFailed("malformed") from None
    return stripped, []


def drop_write_claims(text: str) -> str:
    """Sentences claiming a CRM write are removed: nothing is written before the rep confirms."""
    if not _WRITE_CLAIM.search(text):
        return text
    kept = [s for s in _SENTENCE.findall(text) if not _WRITE_CLAIM.search(s)]
    return "".join(kept).strip()


class StreamFilter:
    """What of a model's text may be shown while it is written: whole clauses, without ``[E1]`` markers
    (renumbered in the final reply), and never a clause claiming a CRM write, offering a discount or
    reading like an instruction (the final reply, checked, shows what survives). A JSON answer is not
    streamed at all."""

    _MARK = re.compile(r"[\[【]\s*E\d+(?:\s*[,，、]\s*E\d+)*\s*[\]】]")
    _CLAUSE = re.compile(r"[^，,。！？!?；;：:\n]*[，,。！？!?；;：:\n]|[^，,。！？!?；;：:\n]+$")
    # Where the checks of the final reply stop looking back (``折扣：20%`` is one offer, ``折扣，20%`` not):
    # each clause is checked together with the clauses before it up to such a mark.
    _HARD_END = "，,。；;\n"

    def __init__(self, out: Callable[[str], None]) -> None:
        self._out = out
        self._buf = ""
        self._started = False
        self._json = False  # an answer written as JSON is not streamed: the final reply carries it
        self._muted = False
        self._context = ""  # the clauses since the last hard end, shown or not

    def __call__(self, piece: str) -> None:
        if not self._started and piece.strip():
            self._started = True
            self._json = piece.lstrip().startswith("{")
        if self._json:
            return
        if self._muted:
            return
        self._buf = self._MARK.sub("", self._buf + piece)
        call = self._buf.find("<tool_call>")
        if call >= 0:  # a tool call written as text: never shown
            self._buf, self._muted = self._buf[:call], True
        hold = len(self._buf)
        angle = self._buf.rfind("<")
        if angle >= 0 and "<tool_call>".startswith(self._buf[angle:]):
            hold = angle  # maybe the start of a tool call written as text
        cut = max(self._buf.rfind("["), self._buf.rfind("【"))
        if cut >= 0 and len(self._buf) - cut <= 16 and not re.search(r"[\]】]", self._buf[cut:]):
            hold = min(hold, cut)  # maybe the start of a marker: wait for the rest
        ends = [m.end() for m in re.finditer(r"[，,。！？!?；;：:\n]", self._buf[:hold])]
        if ends:
            ready, self._buf = self._buf[: ends[-1]], self._buf[ends[-1] :]
            self._emit(ready)

    def flush(self) -> None:
        """The end of one model round: what is left, and a fresh start for the next round."""
        rest, self._buf = self._MARK.sub("", self._buf), ""
        if rest and not self._json:
            self._emit(rest)
        self._started = self._json = self._muted = False
        self._context = ""

    def _emit(self, text: str) -> None:
        for clause in self._CLAUSE.findall(text):
            if not clause:
                continue
            seen = self._context + clause
            self._context = "" if clause[-1] in self._HARD_END else seen
            if not (_WRITE_CLAIM.search(seen) or discount_mentions(seen) or looks_like_injection(seen)):
                self._out(clause)
