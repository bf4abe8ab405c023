"""The citation validator: a citation survives only if it points at evidence given in this
turn and its quote occurs in that evidence's text (whitespace ignored). Pure functions.

Evidence comes in three kinds (DESIGN §6): a knowledge-base chunk (``kb``), a CRM field of one
customer as of a date (``crm``, ref ``customer_id.field``, locator = the record: opportunity id,
visit date, task id, …) and a transcript segment (``memo``, locator ``MM:SS–MM:SS``). The text of
an evidence item *is* the span at its locator, so "the quote occurs at the locator" is checked by
matching the quote against that text. ``verify`` re-checks a rendered citation against a source
resolver (used by the eval and by tests to prove validity independently of the planner).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from copilot.domain import Citation

_WS = re.compile(r"\s+")
KINDS = ("kb", "crm", "memo")

# CRM citation fields (DESIGN §5.6) and how labels name them.
CRM_FIELD_ZH = {
    "profile": "客户档案",
    "contacts": "联系人",
    "opportunities": "商机阶段",
    "visits": "拜访记录",
    "purchases": "月度采购额",
    "tasks": "跟进任务",
}


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
        if ev is None or span is None or ev.kind not in KINDS:
            dropped.append(claim)
            continue
        key = (ev.id, span)
        if key in seen:
            continue
        seen.add(key)
        kept.append(Citation(ev.kind, ev.ref, ev.locator, ev.source, span, ev.label))
    return kept, dropped


def verify(citation: Citation, source_text: Callable[[str, str, str], str | None]) -> bool:
    """Does ``citation.quote`` occur in the stored source at its locator?

    ``source_text(kind, ref, locator)`` returns the stored text of that span (None if unknown).
    """
    if citation.kind not in KINDS:
        return False
    text = source_text(citation.kind, citation.ref, citation.locator)
    return text is not None and quote_in(citation.quote, text)


# -- labels (Chinese, for humans) ------------------------------------------------------------


def clock(seconds: float) -> str:
    """``72.4`` → ``01:12`` (``1:02:03`` past an hour)."""
    total = max(0, int(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def memo_locator(start: float, end: float) -> str:
    return f"{clock(start)}–{clock(end)}"


def memo_label(memo_id: str, locator: str) -> str:
    """``依据拜访录音 memo_17 01:12–01:31``."""
    return f"依据拜访录音 {memo_id}{' ' + locator if locator else ''}"


_COMPANY_TAIL = re.compile(r"(股份有限公司|有限责任公司|有限公司|集团|公司)$")
_BRACKETS = re.compile(r"[（(][^）)]*[）)]")


def short_name(name: str) -> str:
    """``华星电子科技（苏州）有限公司`` → ``华星电子科技``: what a rep calls the customer."""
    short = _COMPANY_TAIL.sub("", _BRACKETS.sub("", name or "").strip()).strip()
    return short or (name or "").strip()


def crm_label(customer_name: str, field: str, detail: str = "") -> str:
    """``依据CRM：华星电子·商机阶段（商务谈判，已52天）``."""
    what = CRM_FIELD_ZH.get(field, field)
    return f"依据CRM：{short_name(customer_name)}·{what}{f'（{detail}）' if detail else ''}"
