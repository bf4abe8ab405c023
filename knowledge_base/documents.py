"""Documents, chunks and locators: the shapes every part of the knowledge base shares.

A chunk's ``text`` is always an exact substring of its document's extracted ``text``
(``doc.text[chunk.start:chunk.end] == chunk.text``), so a citation quote can be
verified against the stored document.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DOC_TYPES = ("talk_track", "objection", "product", "policy", "case", "battlecard", "rules", "other")

DOC_TYPE_ZH = {
    "talk_track": "销售话术",
    "objection": "异议处理",
    "product": "产品资料",
    "policy": "政策",
    "case": "客户案例",
    "battlecard": "竞品对比",
    "rules": "跟进规则",
    "other": "其他",
}


@dataclass(frozen=True, slots=True)
class Locator:
    """Where a span sits in its document. Unused parts are None."""

    page: int | None = None  # 1-based, PDF / DOCX page breaks
    section: str | None = None  # section number, e.g. "2.1"
    heading: str | None = None  # section heading text
    paragraph: int | None = None  # 1-based paragraph index within the section (or page)
    row: int | None = None  # 1-based data row of a table (header excluded)
    sheet: str | None = None  # XLSX sheet name

    def short(self) -> str:
        """Compact machine-ish form used in the JSON contract: ``p3 ¶2``, ``§2.1 ¶2``, ``row 14``."""
        parts: list[str] = []
        if self.page is not None:
            parts.append(f"p{self.page}")
        if self.section:
            parts.append(f"§{self.section}")
        if self.row is not None:
            parts.append(f"{self.sheet + ' ' if self.sheet else ''}row {self.row}")
        if self.paragraph is not None:
            parts.append(f"¶{self.paragraph}")
        return " ".join(parts)

    def zh(self) -> str:
        """Human form for citation labels: ``第3页第2段``, ``§2.1 第2段``, ``第14行``."""
        parts: list[str] = []
        if self.page is not None:
            parts.append(f"第{self.page}页")
        if self.section:
            parts.append(f"§{self.section} ")
        if self.row is not None:
            parts.append(f"{self.sheet + ' ' if self.sheet else ''}第{self.row}行")
        if self.paragraph is not None:
            parts.append(f"第{self.paragraph}段")
        return "".join(parts).strip()


@dataclass(frozen=True, slots=True)
class Block:
    """A unit a loader extracts: a paragraph, a heading's body paragraph, a table row.

    ``start``/``end`` are offsets into the document's extracted text.
    """

    start: int
    end: int
    locator: Locator
    fields: dict[str, str] = field(default_factory=dict)  # table rows: header -> cell


@dataclass(frozen=True, slots=True)
class LoadedDocument:
    """What a loader returns: the full extracted text and its blocks, plus metadata it found."""

    text: str
    blocks: tuple[Block, ...]
    title: str | None = None
    date: str | None = None  # ISO date (YYYY-MM-DD) of this version, if the file says
    metadata: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """A document as ingested (catalogue row)."""

    path: str  # path as ingested, relative to the ingest root, POSIX separators
    title: str
    date: str | None
    doc_type: str
    content_hash: str
    industry: str | None = None
    product: str | None = None
    visibility: tuple[str, ...] = ("all",)  # "all" or team ids
    supersedes: str | None = None


@dataclass(frozen=True, slots=True)
class Chunk:
    id: str
    doc_path: str
    text: str
    start: int
    end: int
    locator: Locator
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result, ready to cite."""

    chunk: Chunk
    document: DocumentInfo
    score: float
    matched_terms: tuple[str, ...] = ()
    stale: bool = False  # a newer version of this document exists (labelled 旧版)

    @property
    def label(self) -> str:
        return citation_label(self.document, self.chunk.locator, stale=self.stale)


def citation_label(doc: DocumentInfo, locator: Locator, *, stale: bool = False) -> str:
    """``依据《异议处理话术》2026-03-01 第3页第2段`` (``（旧版）`` appended for superseded versions)."""
    date = doc.date or ""
    where = locator.zh()
    label = f"依据《{doc.title}》{date}{' ' + where if where else ''}"
    return label + ("（旧版）" if stale else "")
