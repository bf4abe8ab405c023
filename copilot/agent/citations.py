"""The citation validator: a citation survives only if it points at evidence given in this
turn and its quote occurs in that evidence's text (whitespace ignored). Pure functions.

Citations by reference: a model cites an evidence id and, optionally, a short ``phrase`` locating the
point; ``locate`` picks the verbatim span to show (the sentence holding the exact phrase, else the
sentence best aligned with it, else the evidence's own best quote), so a shown quote is verbatim by
construction. A claim that carries a ``quote`` of its own (the offline planner's, or a model's) is
checked as before: it survives only when the quote occurs in the evidence.

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
    """``quote``: a verbatim span claimed by the drafter (None: cited by reference, the code picks the
    span); ``phrase``: a short hint where in the evidence the point is (never shown as such)."""

    evidence_id: str
    quote: str | None = None
    phrase: str = ""


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
    claims: Iterable[ClaimedCitation],
    evidence: Mapping[str, Evidence],
    *,
    fallback: Callable[[Evidence], str] | None = None,
) -> tuple[list[Citation], list[ClaimedCitation]]:
    """Split claims into valid citations (quotes rewritten to the verbatim source span) and drops.

    A claim by reference (no ``quote``) gets its span from ``locate``; ``fallback(evidence)`` is the
    evidence's best quote when the phrase is missing or matches nothing (default ``lead_quote``)."""
    kept: list[Citation] = []
    dropped: list[ClaimedCitation] = []
    seen: set[tuple[str, str]] = set()
    for claim in claims:
        ev = evidence.get(claim.evidence_id)
        span = _span(claim, ev, fallback or (lambda e: lead_quote(e.text))) if ev else None
        if ev is None or span is None or ev.kind not in KINDS:
            dropped.append(claim)
            continue
        key = (ev.id, span)
        if key in seen:
            continue
        seen.add(key)
        kept.append(Citation(ev.kind, ev.ref, ev.locator, ev.source, span, ev.label))
    return kept, dropped


def _span(claim: ClaimedCitation, ev: Evidence, fallback: Callable[[Evidence], str]) -> str | None:
    if claim.quote is not None:
        return verbatim_span(claim.quote, ev.text)
    span = locate(claim.phrase, ev.text) if claim.phrase else None
    if span is None:
        best = fallback(ev)
        span = verbatim_span(best, ev.text) if best else None
    return span


# -- citations by reference: the code picks the verbatim span -------------------------------------

MAX_SPAN_CHARS = 160
MIN_ALIGNMENT = 0.5  # (share of the phrase's characters + 2 × share of its character pairs) / 3
_SENTENCE_SPAN = re.compile(r"[^。！？；!?;\n]+[。！？；!?;]?")
_PUNCT = re.compile(r"[\s，。！？；：、,.!?;:\"'“”‘’（）()《》【】\[\]「」]+")


def sentences(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence of ``text`` (verbatim slices, surrounding blanks excluded)."""
    out = []
    for m in _SENTENCE_SPAN.finditer(text):
        start, end = m.start(), m.end()
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            out.append((start, end))
    return out


def lead_quote(text: str, max_chars: int = MAX_SPAN_CHARS) -> str:
    """The first sentences of ``text`` up to ``max_chars`` (verbatim): a quote for an evidence cited
    without a usable phrase."""
    text = text.strip()
    if len(text) <= max_chars:
        return text
    spans = sentences(text)
    end = 0
    for _s, e in spans:
        if end and e - spans[0][0] > max_chars:
            break
        end = e
    start = spans[0][0] if spans else 0
    return text[start:end] if end and end - start <= max_chars else text[:max_chars]


def _pairs(text: str) -> set[str]:
    t = _PUNCT.sub("", text)
    return {t[i : i + 2] for i in range(len(t) - 1)} or ({t} if t else set())


def _chars(text: str) -> set[str]:
    return set(_PUNCT.sub("", text))


def alignment(phrase: str, span: str) -> float:
    """How much of ``phrase`` a span holds: its characters, and (twice as much) its character pairs."""
    want_chars, want_pairs = _chars(phrase), _pairs(phrase)
    if not want_chars:
        return 0.0
    chars = len(want_chars & _chars(span)) / len(want_chars)
    pairs = len(want_pairs & _pairs(span)) / len(want_pairs) if want_pairs else chars
    return (chars + 2 * pairs) / 3


MIN_SPAN_CHARS = 16  # a shorter sentence (a tag, a heading) is shown with the sentences after it


def _widen(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> str:
    """``text[start:end]`` widened to whole sentences, and past a stub (``场景标签：价格异议。``) to the
    sentences that follow, while that stays within MAX_SPAN_CHARS."""
    first = next((i for i, (a, b) in enumerate(spans) if a <= start < b), None)
    last = next((i for i, (a, b) in enumerate(spans) if a < end <= b), None)
    if first is None or last is None or spans[last][1] - spans[first][0] > MAX_SPAN_CHARS:
        return text[start:end]
    while spans[last][1] - spans[first][0] < MIN_SPAN_CHARS and last + 1 < len(spans):
        if spans[last + 1][1] - spans[first][0] > MAX_SPAN_CHARS:
            break
        last += 1
    return text[spans[first][0] : spans[last][1]]


def locate(phrase: str, text: str) -> str | None:
    """The verbatim span of ``text`` that ``phrase`` points at, or None when nothing aligns.

    1. the exact phrase (whitespace ignored), widened to its sentence(s);
    2. else the sentence, or two adjacent sentences, best aligned with the phrase (``alignment`` at
       least MIN_ALIGNMENT; ties → the shorter span)."""
    q = squash(phrase)
    if not q:
        return None
    spans = sentences(text)
    pattern = r"\s*".join(re.escape(ch) for ch in q)
    m = re.search(pattern, text)
    if m:
        return _widen(text, m.start(), m.end(), spans)
    best: tuple[float, int, int, int] | None = None  # (score, -length, start, end)
    windows = spans + [(spans[i][0], spans[i + 1][1]) for i in range(len(spans) - 1)]
    for s, e in windows:
        if e - s > MAX_SPAN_CHARS and (s, e) not in spans:
            continue
        score = alignment(phrase, text[s:e])
        cand = (score, -(e - s), s, e)
        if best is None or cand[:2] > best[:2]:
            best = cand
    if best is None or best[0] < MIN_ALIGNMENT:
        return None
    s, e = best[2], best[3]
    return _widen(text, s, e, spans) if e - s <= MAX_SPAN_CHARS else lead_quote(text[s:e])


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


def supported_span(answer: str, text: str, min_score: float = MIN_ALIGNMENT) -> str | None:
    """The sentence (or two) of ``text`` the ``answer`` uses most: the largest share of the span's own
    characters and character pairs found in the answer (at least ``min_score``; ties → the longer
    span). Verbatim; None when the answer uses no sentence of ``text`` that much."""
    spans = sentences(text)
    best: tuple[float, int, int, int] | None = None
    windows = spans + [(spans[i][0], spans[i + 1][1]) for i in range(len(spans) - 1)]
    for s, e in windows:
        if e - s > MAX_SPAN_CHARS or len(_PUNCT.sub("", text[s:e])) < 8:
            continue
        cand = (alignment(text[s:e], answer), e - s, s, e)
        if best is None or cand[:2] > best[:2]:
            best = cand
    if best is None or best[0] < min_score:
        return None
    return text[best[2] : best[3]]
