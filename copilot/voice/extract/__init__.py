"""Transcript segments → a visit record whose every field points back to the segment(s) it came from.

    context = ExtractionContext.from_snapshots(crm_snapshots, customer_id="c_renkang")
    record = extract_visit(transcript.segments, recorded_at=when, context=context, llm=services.llm)
    record.to_json()  # customer, contacts, needs, objections, competitors, next_steps, sentiment, stage_hint

Two extractors share one output shape:

* offline (always available): clause rules over lexicons, CRM names and aliases, and ``dates.resolve_due``
  for relative due dates; given an embedder, objections the lexicons cannot type are typed by nearest
  prototype (``extract_embed``). It says what it could not find (``missing``) instead of guessing.
* LLM (when a chat model is configured): the segments go in as numbered, fenced data; the model answers
  JSON, which is validated (types, stages, ISO dates) and whose segment references are checked (an item
  citing no existing segment is dropped; a competitor or contact must be named in a cited segment). Any
  failure falls back to the offline extractor with a Chinese ``note``.

Modules: ``extract_record`` (output shapes, CRM context, name aliases), ``extract_lexicon`` (clauses and
the rule lexicons), ``extract_offline`` and ``extract_llm`` (the two extractors), ``extract_embed``
(objection typing by nearest prototype). This module is the public API: import from here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from copilot.infra.llm.chat_model import EXTRACT, ChatModel
from copilot.infra.llm.structured import StructuredFailure
from copilot.voice.extract.lexicon import _SENTENCE_END
from copilot.voice.extract.llm import (
    SYSTEM_PROMPT,
    ExtractionFailed,
    llm_extract,
    llm_user_message,
    parse_llm_record,
)
from copilot.voice.extract.offline import extract_offline
from copilot.voice.extract.record import (
    CUSTOMER,
    OBJECTION_TYPES,
    REP,
    SENTIMENTS,
    STAGES,
    CompetitorMention,
    ContactMention,
    CustomerMatch,
    ExtractionContext,
    Judgement,
    KnownContact,
    KnownCustomer,
    Need,
    NextStep,
    Objection,
    SourceRef,
    Sources,
    VisitRecord,
    _SegmentLike,
    company_aliases,
    competitor_aliases,
    locator,
)

logger = logging.getLogger(__name__)

__all__ = [
    "CUSTOMER", "OBJECTION_TYPES", "REP", "SENTIMENTS", "STAGES", "SYSTEM_PROMPT", "CompetitorMention",
    "ContactMention", "CustomerMatch", "ExtractionContext", "ExtractionFailed", "Judgement", "KnownContact",
    "KnownCustomer", "Need", "NextStep", "Objection", "SourceRef", "Sources", "VisitRecord", "company_aliases",
    "competitor_aliases", "extract_offline", "extract_visit", "llm_extract", "llm_user_message", "locator",
    "parse_llm_record",
    "script_segments",
]  # fmt: skip


def extract_visit(
    segments: Sequence[_SegmentLike],
    *,
    recorded_at: date | datetime,
    context: ExtractionContext | None = None,
    llm: ChatModel | None = None,
    embedder: Any = None,
) -> VisitRecord:
    """LLM extraction when a model is configured, validated; otherwise (or on any failure) offline.
    ``embedder`` (optional) lets the offline extractor type objections its lexicons cannot. How the
    LLM path ended is counted (``llm.record``): accepted, repaired, or the reason for the fallback."""
    ctx = context or ExtractionContext()
    if llm is None or not segments:
        return extract_offline(segments, recorded_at=recorded_at, context=ctx, embedder=embedder)
    try:
        record, repaired = llm_extract(llm, segments, recorded_at=recorded_at, context=ctx)
    except Exception as exc:  # StructuredFailure, anything else the adapter raised
        reason = exc.reason if isinstance(exc, StructuredFailure) else "unavailable"
        logger.warning("llm extraction failed (%s); using offline extractor", reason)
        llm.record(EXTRACT, reason)
        offline = extract_offline(segments, recorded_at=recorded_at, context=ctx, embedder=embedder)
        return VisitRecord(**{**_fields(offline), "note": "大模型抽取失败，已改用离线规则抽取。"})
    if not any(s.text.strip() for s in segments):
        llm.record(EXTRACT, "repaired" if repaired else "accepted")
        return record
    offline = extract_offline(segments, recorded_at=recorded_at, context=ctx, embedder=embedder)
    empty = not any(getattr(record, f) for f in _LIST_FIELDS)
    if empty and any(getattr(offline, f) for f in _LIST_FIELDS):
        llm.record(EXTRACT, "empty")
        return VisitRecord(**{**_fields(offline), "note": "大模型未给出可核对的内容，已改用离线规则抽取。"})
    # A field the model left empty where the offline rules found grounded items: take those (a small
    # model often answers needs and drops next steps), and say so on the record.
    filled = {f: getattr(offline, f) for f in _LIST_FIELDS if not getattr(record, f) and getattr(offline, f)}
    llm.record(EXTRACT, "repaired" if repaired else "accepted")
    if not filled:
        return record
    names = "、".join(_FIELD_NAMES[f] for f in filled)
    note = f"{record.note + ' ' if record.note else ''}大模型未抽出的{names}由离线规则补充。"
    return VisitRecord(**{**_fields(record), **filled, "note": note})


_LIST_FIELDS = ("needs", "objections", "competitors", "next_steps")
_FIELD_NAMES = {"needs": "需求", "objections": "异议", "competitors": "竞品", "next_steps": "下一步"}


def _fields(record: VisitRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in VisitRecord.__dataclass_fields__}


def script_segments(script: str) -> list[_SegmentLike]:
    """A typed script (eval memos, pasted notes) as pseudo-segments: one per sentence, timed by length."""
    from copilot.voice.transcribe import Segment

    out, t = [], 0.0
    for sent in _SENTENCE_END.split(script):
        sent = sent.strip()
        if not sent:
            continue
        dur = round(max(1.0, len(sent) / 4.5), 2)  # ~4.5 spoken characters per second
        out.append(Segment(start=round(t, 2), end=round(t + dur, 2), text=sent))
        t += dur + 0.4
    return out
