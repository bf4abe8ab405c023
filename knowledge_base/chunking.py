"""Locator-preserving chunking.

Rules: a chunk never straddles two sections (nor two pages or sheets); a table row is its own chunk; long
paragraphs split at Chinese/Latin sentence ends (。！？；!?; and line breaks), short neighbouring
paragraphs of one section are packed together up to ``max_chars``. Every chunk is an exact span of the
document text: ``doc.text[c.start:c.end] == c.text``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from knowledge_base.documents import Block, Chunk, LoadedDocument, Locator

DEFAULT_MAX_CHARS = 320
_SENTENCE_ENDS = set("。！？；!?;\n")
_CLOSERS = set("”’」』）)】》\"'")
_SOFT_BREAKS = set("，,、：: ")


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    locator: Locator
    fields: dict[str, str] = field(default_factory=dict)


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Split ``text[start:end]`` after sentence-ending punctuation (and any closing quotes)."""
    spans, begin, i = [], start, start
    while i < end:
        if text[i] in _SENTENCE_ENDS:
            j = i + 1
            while j < end and text[j] in _CLOSERS:
                j += 1
            spans.append((begin, j))
            begin = i = j
            continue
        i += 1
    if begin < end:
        spans.append((begin, end))
    return [s for s in (_trimmed(text, a, b) for a, b in spans) if s[0] < s[1]]


def _hard_split(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """A sentence longer than the limit: cut at the last comma-like break before it, else at the limit."""
    pieces = []
    while end - start > max_chars:
        cut = start + max_chars
        for k in range(start + max_chars, start + max_chars // 2, -1):
            if text[k - 1] in _SOFT_BREAKS:
                cut = k
                break
        pieces.append(_trimmed(text, start, cut))
        start = cut
    pieces.append(_trimmed(text, start, end))
    return [p for p in pieces if p[0] < p[1]]


def _pieces(text: str, block: Block, max_chars: int) -> list[tuple[int, int]]:
    start, end = _trimmed(text, block.start, block.end)
    if end - start <= max_chars:
        return [(start, end)] if start < end else []
    out: list[tuple[int, int]] = []
    for a, b in sentence_spans(text, start, end):
        out.extend(_hard_split(text, a, b, max_chars) if b - a > max_chars else [(a, b)])
    return out


def _group_key(locator: Locator) -> tuple:
    return (locator.page, locator.section, locator.heading, locator.sheet)


def chunk_document(doc: LoadedDocument, *, max_chars: int = DEFAULT_MAX_CHARS) -> list[Span]:
    spans: list[Span] = []
    current: list[tuple[int, int]] = []
    current_locator: Locator | None = None

    def flush() -> None:
        nonlocal current, current_locator
        if current and current_locator is not None:
            spans.append(Span(current[0][0], current[-1][1], current_locator))
        current, current_locator = [], None

    for block in doc.blocks:
        if block.locator.row is not None:  # table rows are units of their own
            flush()
            for a, b in _pieces(doc.text, block, max_chars):
                spans.append(Span(a, b, block.locator, dict(block.fields)))
            continue
        if current_locator is not None and _group_key(current_locator) != _group_key(block.locator):
            flush()
        for a, b in _pieces(doc.text, block, max_chars):
            if current and b - current[0][0] > max_chars:
                flush()
            if not current:
                current_locator = block.locator
            current.append((a, b))
    flush()
    return spans


def chunk_id(doc_path: str, content_hash: str, span: Span) -> str:
    digest = hashlib.sha256(f"{doc_path}\0{content_hash}\0{span.start}:{span.end}".encode()).hexdigest()
    return "c_" + digest[:16]


def make_chunks(doc: LoadedDocument, *, doc_path: str, content_hash: str, max_chars: int = DEFAULT_MAX_CHARS):
    return [
        Chunk(
            id=chunk_id(doc_path, content_hash, span),
            doc_path=doc_path,
            text=doc.text[span.start : span.end],
            start=span.start,
            end=span.end,
            locator=span.locator,
            fields=span.fields,
        )
        for span in chunk_document(doc, max_chars=max_chars)
    ]
