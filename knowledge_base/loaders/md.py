"""Markdown via markdown-it-py: headings become sections, paragraphs / list items / table rows blocks.
YAML front matter (``---`` … ``---``) is returned as metadata."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from markdown_it import MarkdownIt

from knowledge_base.documents import LoadedDocument, Locator
from knowledge_base.loaders.base import (
    LoaderError,
    ParagraphCounter,
    SectionCounter,
    TextBuilder,
    read_text_file,
    row_text,
)

_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.S)
_INLINE_MARKUP = re.compile(r"(\*\*|__|`|~~)")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


def split_front_matter(text: str) -> tuple[dict, str]:
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise LoaderError(f"Markdown 文件头（YAML front matter）格式错误：{exc}") from exc
    return (meta if isinstance(meta, dict) else {}), text[match.end() :]


def _plain(inline: str) -> str:
    return _INLINE_MARKUP.sub("", _LINK.sub(r"\1", inline))


def load(path: Path) -> LoadedDocument:
    meta, body = split_front_matter(read_text_file(path))
    tokens = MarkdownIt("commonmark").enable("table").parse(body)
    builder = TextBuilder()
    sections, paragraphs = SectionCounter(), ParagraphCounter()
    section = heading = title = None
    table_header: list[str] | None = None
    row_cells: list[str] = []
    row_index = 0
    in_header = False
    # A single leading H1 is the document's title, not section 1.
    h1s = [n for n, t in enumerate(tokens) if t.type == "heading_open" and t.tag == "h1"]
    first_heading = next((n for n, t in enumerate(tokens) if t.type == "heading_open"), None)
    title_index = h1s[0] if len(h1s) == 1 and h1s[0] == first_heading else None
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.type == "heading_open":
            text = _plain(tokens[i + 1].content).strip()
            level = int(token.tag[1])
            if level == 1 and title is None:
                title = text
            if i == title_index:
                section, heading = None, text
            else:
                section, heading = sections.next(level, text), text
            paragraphs.reset()
            builder.heading(text)
            i += 3
            continue
        if token.type == "thead_open":
            in_header, table_header = True, []
        elif token.type == "thead_close":
            in_header = False
        elif token.type == "table_open":
            row_index = 0
        elif token.type == "tr_open":
            row_cells = []
        elif token.type == "inline" and _in_cell(tokens, i):
            row_cells.append(_plain(token.content).strip())
        elif token.type == "tr_close":
            if in_header:
                table_header = row_cells
            else:
                row_index += 1
                headers = table_header or [""] * len(row_cells)
                fields = {
                    h or f"列{n + 1}": c for n, (h, c) in enumerate(zip(headers, row_cells, strict=False))
                }
                locator = Locator(section=section, heading=heading, row=row_index)
                builder.block(row_text(fields), locator, fields)
        elif token.type == "inline":
            locator = Locator(section=section, heading=heading, paragraph=paragraphs.next())
            builder.block(_plain(token.content), locator)
        elif token.type in ("fence", "code_block"):
            locator = Locator(section=section, heading=heading, paragraph=paragraphs.next())
            builder.block(token.content, locator)
        i += 1
    if not builder.blocks:
        raise LoaderError("文件中没有可读取的文字")
    return builder.build(title=meta.get("title") or title, metadata=meta)


def _in_cell(tokens, i: int) -> bool:
    return i > 0 and tokens[i - 1].type in ("th_open", "td_open")
