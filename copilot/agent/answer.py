"""Answer a rep's question from retrieved knowledge-base passages, always with citations.

Offline: the answer quotes the best passages verbatim. With an LLM: the model writes the
answer from fenced, numbered evidence and must cite ids with verbatim quotes; anything it
cites that does not check out is dropped, and an unusable answer falls back to offline.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace
from importlib import resources

from copilot.agent.citations import ClaimedCitation, Evidence, validate
from copilot.domain import ChatAnswer, Citation
from copilot.infra.llm.chat_model import ChatModel, LLMError
from knowledge_base.documents import Hit

logger = logging.getLogger(__name__)

_SENTENCE_END = re.compile(r"(?<=[。！？；!?;])")
MAX_QUOTE_CHARS = 180
NO_EVIDENCE = "知识库中没有找到与该问题相关的资料。可以换个说法再问，或请管理员补充相关话术文档。"
# Table rows: prefer the answer column when quoting.
_ANSWER_FIELDS = ("标准应答话术", "应答话术", "推荐话术", "话术", "回答", "答案", "应答")


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


def _evidence_block(evidence: list[Evidence]) -> str:
    # Evidence is data: fenced, numbered, with its label; the model cites the numbers.
    parts = [f'<item id="{e.id}" label="{e.label}">\n{e.text}\n</item>' for e in evidence]
    return "<evidence>\n" + "\n".join(parts) + "\n</evidence>"


def _parse(raw: str) -> tuple[str, list[ClaimedCitation]]:
    text = raw.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    data = json.loads(text)
    answer = data["answer"]
    if not isinstance(answer, str) or not answer.strip():
        raise ValueError("empty answer")
    claims = [
        ClaimedCitation(str(c.get("evidence_id", "")), str(c.get("quote", "")))
        for c in data.get("citations") or []
        if isinstance(c, dict)
    ]
    return answer.strip(), claims


def llm_answer(question: str, hits: list[Hit], llm: ChatModel) -> ChatAnswer:
    if not hits:
        return offline_answer(question, hits)
    evidence = evidence_from_hits(hits)
    user_msg = f"{_evidence_block(evidence)}\n\n销售的问题：{question.strip()}"
    try:
        raw = llm.complete(_prompt(), user_msg, json_mode=True)
        answer, claims = _parse(raw)
    except LLMError:
        return offline_answer(question, hits, note="大模型服务暂不可用，以下为离线检索答案。")
    except (ValueError, KeyError, TypeError):  # json.JSONDecodeError is a ValueError
        logger.warning("llm answer unparseable; falling back to offline")
        return offline_answer(question, hits, note="大模型返回格式异常，以下为离线检索答案。")
    citations, dropped = validate(claims, {e.id: e for e in evidence})
    if dropped:
        logger.info("dropped %d unverifiable citations", len(dropped))
    if not citations:
        fallback = offline_answer(question, hits, note="大模型的回答缺少可核验的引用，以下为离线检索答案。")
        return replace(fallback, dropped_citations=len(dropped))
    return ChatAnswer(answer=answer, citations=tuple(citations), mode="llm", dropped_citations=len(dropped))
