"""The words Whisper should spell right in a memo: the customer's and contacts' names, competitors and
products (CRM and the KB's battlecards, product fields and dictionary terms)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from copilot.voice.extract import ExtractionContext

logger = logging.getLogger(__name__)

MAX_HOTWORDS = 30  # Whisper's prompt is short (transcribe.py also caps it at 200 characters)


def optional(get: Callable[[], Any] | None, what: str) -> Any:
    """An optional helper (KB, embedder): None when absent or when getting it fails; never fails a memo."""
    if get is None:
        return None
    try:
        return get()
    except Exception as exc:
        logger.warning("memo %s unavailable: %s", what, type(exc).__name__)
        return None


def kb_dictionary(kb: Any, visible_teams: set[str] | None = None) -> tuple[list[str], list[str], list[str]]:
    """``(competitors, products, terms)`` of a KnowledgeBase (or its ``Catalog``: anything with
    ``documents()`` and, optionally, ``terms()``/``catalog.terms()``); empty lists when it is None.
    Names come only from documents the rep may see (``visible_teams``, None = all)."""
    if kb is None:
        return [], [], []
    from types import SimpleNamespace

    from copilot.agent.competitors import competitor_names
    from knowledge_base.retrieval import document_allowed

    docs = [d for d in kb.documents() if document_allowed(d, visible_teams)]
    competitors = competitor_names(SimpleNamespace(documents=lambda: docs))
    products = [d.product.strip() for d in docs if d.product and d.product.strip()]
    terms_of = getattr(kb, "terms", None) or getattr(getattr(kb, "catalog", None), "terms", None)
    terms = list(terms_of()) if terms_of else []
    return competitors, products, terms


def memo_hotwords(
    context: ExtractionContext,
    kb: Any = None,
    *,
    visible_teams: set[str] | None = None,
    limit: int = MAX_HOTWORDS,
) -> list[str]:
    """Names Whisper should spell right, most relevant first, de-duplicated, at most ``limit``: the
    memo's customer (short forms) and its contacts, the CRM's competitors, the KB's competitors (its
    battlecards) and product names, the rep's other customers (when none was chosen), then the KB's
    stored dictionary terms. A KB that cannot be read only costs its words."""
    chosen = [c for c in context.customers if c.id == context.customer_id]
    own = [a for c in chosen for a in c.aliases[-2:]]
    own += [c.name for c in context.contacts if c.customer_id == context.customer_id]
    others = [] if chosen else [c.aliases[-1] for c in context.customers]
    try:
        kb_competitors, products, terms = kb_dictionary(kb, visible_teams)
    except Exception as exc:
        logger.warning("memo hotwords without the knowledge base: %s", type(exc).__name__)
        kb_competitors, products, terms = [], [], []
    words = [*own, *context.competitors, *kb_competitors, *products, *others, *terms]
    out = list(dict.fromkeys(w.strip() for w in words if w and w.strip()))
    return out[:limit]


def correct_transcript_names(transcript: Any, vocabulary: list[str]) -> tuple[Any, list[Any]]:
    """The transcript with names heard wrong written as the deployment spells them (华兴 → 华星,
    得我森 → 德沃森), segment by segment so timestamps stay right; and the corrections made."""
    from dataclasses import replace

    from copilot.agent.linker import correct_names

    corrections: list[Any] = []
    segments = []
    for segment in transcript.segments:
        text, found = correct_names(segment.text, vocabulary)
        corrections += found
        segments.append(replace(segment, text=text) if found else segment)
    if not corrections:
        return transcript, []
    text = (
        "".join(s.text for s in segments)
        if not transcript.text
        else correct_names(transcript.text, vocabulary)[0]
    )
    return replace(transcript, segments=tuple(segments), text=text), corrections
