"""Plain text: paragraphs are separated by blank lines; short numbered lines ("2.1 价格异议") are headings."""

from __future__ import annotations

import re
from pathlib import Path

from knowledge_base.documents import LoadedDocument, Locator
from knowledge_base.loaders.base import (
    LoaderError,
    ParagraphCounter,
    SectionCounter,
    TextBuilder,
    explicit_section_number,
    read_text_file,
)

_SENTENCE_END = tuple("。！？；：.!?;:，,")


def looks_like_heading(line: str) -> bool:
    line = line.strip()
    return (
        0 < len(line) <= 40
        and "\n" not in line
        and not line.endswith(_SENTENCE_END)
        and explicit_section_number(line) is not None
    )


def split_paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if p.strip()]


def add_paragraphs(
    builder: TextBuilder,
    paragraphs: list[str],
    *,
    sections: SectionCounter,
    page: int | None = None,
    state: dict | None = None,
) -> None:
    """Append paragraphs, turning heading-like first lines into sections. ``state`` carries the current
    section across calls (PDF pages)."""
    state = state if state is not None else {}
    counter: ParagraphCounter = state.setdefault("paragraphs", ParagraphCounter())
    for paragraph in paragraphs:
        lines = paragraph.strip().split("\n")
        if looks_like_heading(lines[0]):
            heading = lines[0].strip()
            state["section"], state["heading"] = sections.next(1, heading), heading
            counter.reset()
            builder.heading(heading)
            lines = lines[1:]
            if not lines:
                continue
        locator = Locator(
            page=page,
            section=state.get("section"),
            heading=state.get("heading"),
            paragraph=counter.next(),
        )
        builder.block("\n".join(lines), locator)


def load(path: Path) -> LoadedDocument:
    text = read_text_file(path)
    builder = TextBuilder()
    add_paragraphs(builder, split_paragraphs(text), sections=SectionCounter())
    if not builder.blocks:
        raise LoaderError("文件中没有可读取的文字")
    return builder.build()
