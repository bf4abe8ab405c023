"""The citation validator: a citation survives only if it points at evidence given in this
turn and its quote occurs in that evidence's text (whitespace ignored). Pure functions."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from copilot.domain import Citation

_WS = re.compile(r"\s+")


def squash(text: str) -> str:
    return _WS.sub("", text)


@dataclass(frozen=True, slots=True)
class Evidence:
    """A source span the model may cite, known by ``id`` for this turn only."""

    id: str
    kind: str  # kb | crm | memo
    ref: str
    locator: str
    source: str
    label: str
    text: str  # the full text of the span: quotes must come from here


@dataclass(frozen=True, slots=True)
class ClaimedCitation:
    evidence_id: str
    quote: str


def quote_in(quote: str, text: str) -> bool:
    q = squash(quote)
    return bool(q) and q in squash(text)


def verbatim_span(quote: str, text: str) -> str | None:
    """The exact substring of ``text`` that ``quote`` matches when whitespace is ignored."""
    q = squash(quote)
    if not q:
        return None
    pattern = r"\s*".join(re.escape(ch) for ch in q)
    m = re.search(pattern, text)
    return m.group(0) if m else None


def validate(
    claims: Iterable[ClaimedCitation], evidence: Mapping[str, Evidence]
) -> tuple[list[Citation], list[ClaimedCitation]]:
    """Split claims into valid citations (quotes rewritten to the verbatim source span) and drops."""
    kept: list[Citation] = []
    dropped: list[ClaimedCitation] = []
    seen: set[tuple[str, str]] = set()
    for claim in claims:
        ev = evidence.get(claim.evidence_id)
        span = verbatim_span(claim.quote, ev.text) if ev else None
        if ev is None or span is None:
            dropped.append(claim)
            continue
        key = (ev.id, span)
        if key in seen:
            continue
        seen.add(key)
        kept.append(Citation(ev.kind, ev.ref, ev.locator, ev.source, span, ev.label))
    return kept, dropped
