"""Answer a rep's question from retrieved knowledge-base passages, always with citations.

Offline: the answer quotes the best passages verbatim. With an LLM: the passages go to the model as
fenced, numbered evidence trimmed to the prompt budget; the model answers in a JSON schema and cites
evidence ids (``[E1]`` in the text and/or a citations list with an optional short phrase); the code
picks the verbatim span it shows (``citations.locate``), so a shown quote is right by construction.
Anything the model quotes itself is validated; an answer with no valid citation, or offering a
discount the cited evidence does not allow, falls back to offline, and every outcome is counted by path
and reason (``ChatModel.record``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from importlib import resources
from typing import Any

from copilot.agent.citations import ClaimedCitation, Evidence, supported_span, validate
from copilot.agent.offline_planner import discount_mentions
from copilot.agent.safety import looks_like_injection
from copilot.domain import ChatAnswer, Citation
from copilot.infra.llm.budget import estimate_tokens, fit
from copilot.infra.llm.chat_model import CHAT, ChatModel, OutputSchema
from copilot.infra.llm.structured import StructuredFailure, ask_json
from knowledge_base.documents import Hit

logger = logging.getLogger(__name__)

_SENTENCE_END = re.compile(r"(?<=[。！？；!?;])")
MAX_QUOTE_CHARS = 180
MAX_ANSWER_TOKENS = 600
MAX_CITATIONS = 6
NO_EVIDENCE = "知识库中没有找到与该问题相关的资料。可以换个说法再问，或请管理员补充相关话术文档。"
# Table rows: prefer the answer column when quoting.
_ANSWER_FIELDS = ("标准应答话术", "应答话术", "推荐话术", "话术", "回答", "答案", "应答")
# ``[E1]``, ``【E2】``, ``[E1, E3]`` in the answer text.
_MARKER = re.compile(r"[\[【]\s*(E\d+(?:\s*[,，、]\s*E\d+)*)\s*[\]】]")

NOTES = {
    "timeout": "大模型服务暂不可用（响应超时），以下为离线检索答案。",
    "unavailable": "大模型服务暂不可用，以下为离线检索答案。",
    "refused": "大模型服务暂不可用（请求被拒绝），以下为离线检索答案。",
    "malformed": "大模型返回格式异常，以下为离线检索答案。",
    "ungrounded": "大模型的回答缺少可核验的引用，以下为离线检索答案。",
    "unsafe": "大模型的回答超出了资料允许的范围，以下为离线检索答案。",
}


def evidence_from_hits(hits: list[Hit]) -> list[Evidence]:
    return [
        Evidence(
            id=f"E{i}",
            kind="kb",
            ref=h.chunk.id,
            locator=h.chunk.locator.short(),
            source=h.document.path,
            label=h.label,
            text=h.chunk.text,
        )
        for i, h in enumerate(hits, start=1)
    ]


def best_quote(text: str, fields: dict[str, str] | None = None) -> str:
    """A verbatim, sentence-bounded excerpt of ``text`` short enough to read in a chat."""
    for name in _ANSWER_FIELDS:
        value = (fields or {}).get(name)
        if value and value in text:
            text = value
            break
    text = text.strip()
    if len(text) <= MAX_QUOTE_CHARS:
        return text
    out = ""
    for sentence in _SENTENCE_END.split(text):
        if out and len(out) + len(sentence) > MAX_QUOTE_CHARS:
            break
        out += sentence
    return (out or text[:MAX_QUOTE_CHARS]).strip()


def offline_answer(question: str, hits: list[Hit], *, note: str | None = None) -> ChatAnswer:
    if not hits:
        return ChatAnswer(answer=NO_EVIDENCE, citations=(), mode="offline", note=note)
    lines = [f"关于「{question.strip()}」，知识库中最相关的依据如下："]
    citations: list[Citation] = []
    for i, hit in enumerate(hits, start=1):
        quote = best_quote(hit.chunk.text, hit.chunk.fields)
        lines.append(f"{i}. {quote}\n   —— {hit.label}")
        citations.append(
            Citation("kb", hit.chunk.id, hit.chunk.locator.short(), hit.document.path, quote, hit.label)
        )
    return ChatAnswer(answer="\n".join(lines), citations=tuple(citations), mode="offline", note=note)


def _prompt() -> str:
    return resources.files("copilot.agent.prompts").joinpath("chat_answer.md").read_text(encoding="utf-8")


def _attr(value: str) -> str:
    return value.replace('"', "'").replace("<", "‹").replace(">", "›")


def evidence_block(evidence: list[Evidence], texts: dict[str, str] | None = None) -> str:
    """Evidence is data: fenced, numbered, with its label; ``texts`` overrides (trimmed) item texts."""
    parts = [
        f'<item id="{e.id}" label="{_attr(e.label)}">\n{(texts or {}).get(e.id, e.text)}\n</item>'
        for e in evidence
    ]
    return "<evidence>\n" + "\n".join(parts) + "\n</evidence>"


MAX_PHRASE_CHARS = 30


def answer_schema(ids: list[str]) -> OutputSchema:
    """Citations first, then the answer: a small model that has just picked its evidence writes an
    answer from it instead of echoing the question; lengths bound what a grammar lets it generate."""
    return OutputSchema(
        "chat_answer",
        {
            "type": "object",
            "properties": {
                "citations": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_CITATIONS,
                    "items": {
                        "type": "object",
                        "properties": {
                            "evidence_id": {"type": "string", "enum": ids},
                            "phrase": {"type": "string", "maxLength": MAX_PHRASE_CHARS},
                        },
                        "required": ["evidence_id", "phrase"],
                    },
                },
                "answer": {"type": "string", "minLength": 20, "maxLength": 400},
            },
            "required": ["citations", "answer"],
        },
    )


# Words of the prompt's format description: an answer made of them copied the format, not an answer.
_TEMPLATE_WORDS = ("回答正文", "这样的编号", "你根据资料写的回答", "evidence_id")
MIN_ANSWER_CHARS = 8


def parse_answer(data: Any, question: str = "") -> tuple[str, list[ClaimedCitation]]:
    """The model's JSON → (answer text, claims); ValueError naming what is wrong (it goes back to the
    model in the repair turn)."""
    if not isinstance(data, dict):
        raise ValueError("顶层必须是 JSON 对象")
    answer = data.get("answer")
    if not isinstance(answer, str) or not answer.strip():
        raise ValueError("answer 必须是非空字符串")
    if any(w in answer for w in _TEMPLATE_WORDS):
        raise ValueError("answer 照抄了格式说明，请根据资料写出真正的回答")
    body = _MARKER.sub("", answer).strip(" ，。？?！!")
    if len(body) < MIN_ANSWER_CHARS and (not body or body in question or len(body) <= 2):
        raise ValueError("answer 太短或只是重复了问题，请根据资料回答")
    raw = data.get("citations") or []
    if not isinstance(raw, list):
        raise ValueError("citations 必须是数组")
    claims = []
    for c in raw[: MAX_CITATIONS * 2]:
        if isinstance(c, str):  # ["E1", "E2"]: ids alone
            claims.append(ClaimedCitation(c.strip()))
        elif isinstance(c, dict):
            quote = c.get("quote")
            claims.append(
                ClaimedCitation(
                    str(c.get("evidence_id") or c.get("id") or "").strip(),
                    quote if isinstance(quote, str) else None,
                    str(c.get("phrase") or "")[:80],
                )
            )
    return answer.strip(), claims


def marker_claims(answer: str, known: set[str]) -> list[ClaimedCitation]:
    """``[E2]`` markers in the text cite by reference too (small models often cite only that way)."""
    ids = [i.strip() for m in _MARKER.finditer(answer) for i in re.split(r"[,，、]", m.group(1))]
    return [ClaimedCitation(i) for i in dict.fromkeys(ids) if i and i not in known]


USED_SCORE = 0.8  # an uncited evidence sentence this much contained in the answer is cited too


def used_claims(answer: str, evidence: list[Evidence], known: set[str]) -> list[ClaimedCitation]:
    """Evidence the answer repeats (a sentence of it nearly word for word) but does not cite: cited by
    reference to that sentence, so a rep sees where the words came from."""
    out = []
    for e in evidence:
        if e.id not in known:
            span = supported_span(answer, e.text, USED_SCORE)
            if span:
                out.append(ClaimedCitation(e.id, span))
    return out


def renumber(answer: str, order: dict[str, int]) -> str:
    """``[E3]`` → ``[1]`` (the shown citation's number); markers of dropped evidence are removed."""

    def sub(m: re.Match[str]) -> str:
        nums = [order[i.strip()] for i in re.split(r"[,，、]", m.group(1)) if i.strip() in order]
        return "".join(f"[{n}]" for n in dict.fromkeys(nums))

    return _MARKER.sub(sub, answer).strip()


_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*[%％]")


def unsafe_reason(answer: str, cited: list[Evidence]) -> str | None:
    """Why an answer must not be shown: instruction-like text, or a discount figure above every figure
    the cited evidence itself states (a discount, or any percentage: ``A类客户最高12%``)."""
    if looks_like_injection(answer):
        return "instruction_text"
    offered = discount_mentions(answer)
    if offered:
        allowed = [x for e in cited for x in discount_mentions(e.text)]
        allowed += [float(m.group(1)) for e in cited for m in _PERCENT.finditer(e.text)]
        if not allowed or max(offered) > max(allowed):
            return "discount_beyond_evidence"
    return None


def _budgeted(
    question: str, evidence: list[Evidence], llm: ChatModel
) -> tuple[list[Evidence], dict[str, str]]:
    """The evidence that fits ``llm.context_tokens`` (after the prompt, question and answer room)."""
    overhead = estimate_tokens(_prompt()) + estimate_tokens(question) + 40 * len(evidence) + 64
    budget = max(0, int(getattr(llm, "context_tokens", 4096)) - overhead - MAX_ANSWER_TOKENS)
    kept = fit([e.text for e in evidence], budget)
    shown = [e for e, text in zip(evidence, kept, strict=True) if text is not None]
    return shown, {e.id: text for e, text in zip(evidence, kept, strict=True) if text is not None}


def llm_answer(question: str, hits: list[Hit], llm: ChatModel) -> ChatAnswer:
    if not hits:
        return offline_answer(question, hits)
    evidence, texts = _budgeted(question, evidence_from_hits(hits), llm)
    q = question.strip()
    user_msg = f"销售的问题：{q}\n\n{evidence_block(evidence, texts)}\n\n请根据以上资料回答销售的问题「{q}」，只输出 JSON。"

    def fallback(reason: str, dropped: int = 0) -> ChatAnswer:
        llm.record(CHAT, reason)
        return replace(offline_answer(question, hits, note=NOTES[reason]), dropped_citations=dropped)

    try:
        (answer, claims), repaired = ask_json(
            llm,
            path=CHAT,
            system=_prompt(),
            user=user_msg,
            schema=answer_schema([e.id for e in evidence]),
            parse=lambda data: parse_answer(data, question),
            max_tokens=MAX_ANSWER_TOKENS,
        )
    except StructuredFailure as exc:
        logger.warning("llm answer unusable (%s); falling back to offline", exc.reason)
        return fallback(exc.reason if exc.reason in NOTES else "unavailable")
    claims += marker_claims(answer, {c.evidence_id for c in claims})
    claims += used_claims(answer, evidence, {c.evidence_id for c in claims})
    by_id = {e.id: e for e in evidence}
    fields = {e.id: h.chunk.fields for e, h in zip(evidence_from_hits(hits), hits, strict=True)}

    def quote_for(e: Evidence) -> str:  # cited without a phrase that locates: what the answer used
        return supported_span(answer, e.text) or best_quote(e.text, fields.get(e.id))

    citations, dropped = validate(claims, by_id, fallback=quote_for)
    if dropped:
        logger.info("dropped %d unverifiable citations", len(dropped))
    if not citations:
        return fallback("ungrounded", len(dropped))
    cited_ids = list(dict.fromkeys(c.ref for c in citations))
    cited = [e for e in evidence if e.ref in cited_ids]
    reason = unsafe_reason(answer, cited)
    if reason:
        logger.warning("llm answer rejected: %s", reason)
        return fallback("unsafe", len(dropped))
    order = {e.id: cited_ids.index(e.ref) + 1 for e in evidence if e.ref in cited_ids}
    shown = tuple(_first_per_evidence(citations))
    llm.record(CHAT, "repaired" if repaired else "accepted")
    return ChatAnswer(
        answer=renumber(answer, order), citations=shown, mode="llm", dropped_citations=len(dropped)
    )


def _first_per_evidence(citations: list[Citation]) -> list[Citation]:
    """One citation per evidence item (the numbering in the text is per item), in citing order."""
    seen: set[str] = set()
    out = []
    for c in citations:
        if c.ref not in seen:
            seen.add(c.ref)
            out.append(c)
    return out
