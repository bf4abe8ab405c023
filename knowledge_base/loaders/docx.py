"""DOCX via python-docx: heading styles are sections, body paragraphs and table rows are blocks, explicit
page breaks advance the page number."""

from __future__ import annotations

from pathlib import Path

from knowledge_base.documents import LoadedDocument, Locator
from knowledge_base.loaders.base import (
    LoaderError,
    ParagraphCounter,
    SectionCounter,
    TextBuilder,
    row_text,
)

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _heading_level(paragraph) -> int | None:
    style = (paragraph.style.name if paragraph.style is not None else "") or ""
    lowered = style.lower()
    if lowered == "title":
        return 0
    for prefix in ("heading", "标题"):
        if lowered.startswith(prefix):
            rest = lowered[len(prefix) :].strip()
            return int(rest) if rest.isdigit() else 1
    return None


def _page_breaks(element) -> tuple[int, int]:
    """(breaks before the paragraph's text, breaks after) from w:pageBreakBefore and w:br type=page."""
    before = 1 if element.find(f"{_W}pPr/{_W}pageBreakBefore") is not None else 0
    after = sum(1 for br in element.iter(f"{_W}br") if br.get(f"{_W}type") == "page")
    return before, after


def load(path: Path) -> LoadedDocument:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(str(path))
    except Exception as exc:  # python-docx raises several types for a broken package
        raise LoaderError(f"Word 文件损坏或不是 .docx 格式（{type(exc).__name__}）") from exc
    body = document.element.body
    has_breaks = any(_page_breaks(el) != (0, 0) for el in body.iter(f"{_W}p"))
    page = 1
    builder = TextBuilder()
    sections, paragraphs = SectionCounter(), ParagraphCounter()
    section = heading = title = None
    for element in body.iterchildren():
        if element.tag == f"{_W}p":
            paragraph = Paragraph(element, document)
            before, after = _page_breaks(element)
            page += before
            text = paragraph.text
            level = _heading_level(paragraph)
            if level is not None and text.strip():
                if level == 0:  # the Title style names the document; Heading 1 is a section
                    title = title or text.strip()
                    builder.heading(text)
                    continue
                section, heading = sections.next(max(level, 1), text.strip()), text.strip()
                paragraphs.reset()
                builder.heading(text)
            elif text.strip():
                locator = Locator(
                    page=page if has_breaks else None,
                    section=section,
                    heading=heading,
                    paragraph=paragraphs.next(),
                )
                builder.block(text, locator)
            page += after
        elif element.tag == f"{_W}tbl":
            _add_table(builder, Table(element, document), page if has_breaks else None, section, heading)
    if not builder.blocks:
        raise LoaderError("Word 文件中没有可读取的文字")
    core_title = (document.core_properties.title or "").strip() or None
    return builder.build(title=core_title or title)


def _add_table(
    builder: TextBuilder, table, page: int | None, section: str | None, heading: str | None
) -> None:
    header: list[str] | None = None
    index = 0
    for row in table.rows:
        cells = _unique_cells(row)
        if header is None:
            header = cells
            continue
        index += 1
        fields = {(n or f"列{k + 1}"): c for k, (n, c) in enumerate(zip(header, cells, strict=False))}
        builder.block(
            row_text(fields), Locator(page=page, section=section, heading=heading, row=index), fields
        )


def _unique_cells(row) -> list[str]:
    """Merged cells repeat in python-docx; keep each underlying cell once."""
    seen, cells = set(), []
    for cell in row.cells:
        if id(cell._tc) in seen:
            continue
        seen.add(id(cell._tc))
        cells.append(cell.text.strip())
    return cells
