"""HTML via BeautifulSoup: h1–h6 are sections; p, li, pre, blockquote are paragraphs; table rows are rows."""

from __future__ import annotations

from pathlib import Path

from bs4 import BeautifulSoup

from knowledge_base.documents import LoadedDocument, Locator
from knowledge_base.loaders.base import (
    LoaderError,
    ParagraphCounter,
    SectionCounter,
    TextBuilder,
    read_text_file,
    row_text,
)

_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_PARAGRAPHS = ("p", "li", "pre", "blockquote", "dd", "dt", "figcaption")


def load(path: Path) -> LoadedDocument:
    soup = BeautifulSoup(read_text_file(path), "html.parser")
    for tag in soup(["script", "style", "noscript", "nav", "template"]):
        tag.decompose()
    title = soup.title.get_text(strip=True) if soup.title else None
    meta_date = soup.find("meta", attrs={"name": "date"})
    builder = TextBuilder()
    sections, paragraphs = SectionCounter(), ParagraphCounter()
    section = heading = None
    body = soup.body or soup
    for element in body.find_all([*_HEADINGS, *_PARAGRAPHS, "table"]):
        if element.find_parent([*_PARAGRAPHS, "table"]) is not None:
            continue  # nested: already taken with its parent
        if element.name in _HEADINGS:
            text = element.get_text(" ", strip=True)
            if not text:
                continue
            title = title or text
            section, heading = sections.next(int(element.name[1]), text), text
            paragraphs.reset()
            builder.heading(text)
        elif element.name == "table":
            _add_table(builder, element, section, heading)
        else:
            locator = Locator(section=section, heading=heading, paragraph=paragraphs.next())
            builder.block(element.get_text("\n" if element.name == "pre" else " ", strip=True), locator)
    if not builder.blocks:
        raise LoaderError("网页中没有可读取的正文")
    return builder.build(title=title, date=meta_date.get("content") if meta_date else None)


def _add_table(builder: TextBuilder, table, section: str | None, heading: str | None) -> None:
    rows = table.find_all("tr")
    header: list[str] | None = None
    index = 0
    for tr in rows:
        cells = [c.get_text(" ", strip=True) for c in tr.find_all(["th", "td"])]
        if header is None and tr.find("th") is not None:
            header = cells
            continue
        index += 1
        names = header or [""] * len(cells)
        fields = {n or f"列{k + 1}": c for k, (n, c) in enumerate(zip(names, cells, strict=False))}
        builder.block(row_text(fields), Locator(section=section, heading=heading, row=index), fields)
