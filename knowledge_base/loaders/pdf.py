"""PDF text layer via pypdf; the page number of every block comes from the PDF."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from knowledge_base.documents import LoadedDocument
from knowledge_base.loaders.base import LoaderError, ParagraphCounter, SectionCounter, TextBuilder
from knowledge_base.loaders.txt import add_paragraphs, looks_like_heading

_LINE_END = tuple("。！？；：.!?;:")


def _paragraphs(page_text: str) -> list[str]:
    """PDF lines are broken at the page width: join lines until a sentence end or a heading."""
    paragraphs: list[str] = []
    current: list[str] = []
    for raw in page_text.replace("\r", "\n").split("\n"):
        line = raw.strip()
        if not line:
            if current:
                paragraphs.append("".join(current))
                current = []
            continue
        if looks_like_heading(line):
            if current:
                paragraphs.append("".join(current))
            paragraphs.append(line)
            current = []
            continue
        # Latin words broken at a line end need a space back; CJK lines join directly.
        if current and current[-1][-1:].isascii() and line[:1].isascii():
            current.append(" ")
        current.append(line)
        if line.endswith(_LINE_END):
            paragraphs.append("".join(current))
            current = []
    if current:
        paragraphs.append("".join(current))
    return paragraphs


def load(path: Path) -> LoadedDocument:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            raise LoaderError("PDF 已加密，无法读取")
        pages = [page.extract_text() or "" for page in reader.pages]
        info = reader.metadata
    except LoaderError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise LoaderError(f"PDF 文件损坏或格式不正确：{exc}") from exc
    builder = TextBuilder()
    sections, state = SectionCounter(), {}
    for number, text in enumerate(pages, start=1):
        state["paragraphs"] = ParagraphCounter()  # paragraphs count within the page
        add_paragraphs(builder, _paragraphs(text), sections=sections, page=number, state=state)
    if not builder.blocks:
        raise LoaderError("PDF 没有文字层（可能是扫描件），暂不支持 OCR")
    title = (info.title if info else None) or None
    if title and re.fullmatch(r"(untitled|microsoft word.*)", title, re.I):
        title = None
    return builder.build(title=title)
