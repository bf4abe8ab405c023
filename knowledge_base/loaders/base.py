"""Shared pieces of the loaders: the error type, a builder that keeps block offsets exact, and section
numbering."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from knowledge_base.documents import Block, LoadedDocument, Locator


class LoaderError(Exception):
    """A file cannot be read; ``reason`` is a Chinese explanation for the user."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# "2.1 价格异议", "3、交付", "1.2.3. 标题" — an explicit section number at the start of a heading.
_NUMBERED = re.compile(r"^\s*(\d{1,2}(?:\.\d{1,2}){0,4})(?:[\.、．)）]\s*|\s+)(?=\S)")
# "第三章 …", "第2节 …"
_CHAPTER = re.compile(r"^\s*第\s*([一二三四五六七八九十百\d]+)\s*[章节部分篇条]")
_CN_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}


def _cn_number(text: str) -> int | None:
    if text.isdigit():
        return int(text)
    if len(text) == 1:
        return _CN_DIGITS.get(text)
    if text.startswith("十"):
        return 10 + (_CN_DIGITS.get(text[1:], 0) if len(text) > 1 else 0)
    if len(text) == 2 and text.endswith("十"):
        return _CN_DIGITS.get(text[0], 0) * 10
    if len(text) == 3 and text[1] == "十":
        return _CN_DIGITS.get(text[0], 0) * 10 + _CN_DIGITS.get(text[2], 0)
    return None


def explicit_section_number(heading: str) -> str | None:
    match = _NUMBERED.match(heading)
    if match:
        return match.group(1)
    match = _CHAPTER.match(heading)
    if match:
        number = _cn_number(match.group(1))
        return str(number) if number else None
    return None


class SectionCounter:
    """Numbers headings: an explicit number in the heading wins, else hierarchical counters (1, 1.2, …)."""

    def __init__(self) -> None:
        self._counters: list[int] = []
        self._min_level: int | None = None

    def next(self, level: int, heading: str) -> str:
        explicit = explicit_section_number(heading)
        if explicit:
            self._counters = [int(part) for part in explicit.split(".")]
            return explicit
        if self._min_level is None or level < self._min_level:
            self._min_level = level
        depth = max(1, level - self._min_level + 1)
        counters = self._counters[:depth]
        while len(counters) < depth:
            counters.append(0)
        counters[-1] += 1
        self._counters = counters
        return ".".join(str(c) for c in counters)


@dataclass
class TextBuilder:
    """Concatenates headings and blocks into one document text; each block's offsets stay exact."""

    parts: list[str] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    length: int = 0

    def _append(self, text: str) -> tuple[int, int]:
        if self.parts:
            self.parts.append("\n\n")
            self.length += 2
        start = self.length
        self.parts.append(text)
        self.length += len(text)
        return start, self.length

    def heading(self, text: str) -> None:
        text = clean(text)
        if text:
            self._append(text)

    def block(self, text: str, locator: Locator, fields: dict[str, str] | None = None) -> None:
        text = clean(text)
        if not text:
            return
        start, end = self._append(text)
        self.blocks.append(Block(start=start, end=end, locator=locator, fields=dict(fields or {})))

    def build(self, *, title: str | None = None, date: str | None = None, metadata=None) -> LoadedDocument:
        return LoadedDocument(
            text="".join(self.parts),
            blocks=tuple(self.blocks),
            title=title,
            date=date,
            metadata=dict(metadata or {}),
        )


_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_BLANKS = re.compile(r"\n\s*\n+")


def clean(text: str) -> str:
    """Trim, collapse runs of spaces and blank lines; keep single newlines (they end sentences in lists)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANKS.sub("\n", text).strip()


def row_text(fields: dict[str, str]) -> str:
    """A table row as ``表头：值`` lines (readable, quotable and keeps the header words searchable)."""
    return "\n".join(f"{k}：{v}" if k else v for k, v in fields.items() if v)


class ParagraphCounter:
    """Paragraph index within the current section (or page)."""

    def __init__(self) -> None:
        self.value = 0

    def reset(self) -> None:
        self.value = 0

    def next(self) -> int:
        self.value += 1
        return self.value


def read_text_file(path) -> str:
    """Decode a text file: UTF-8 (with or without BOM), else GB18030 (common for Chinese Windows files)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoaderError(f"无法读取文件：{exc.strerror or exc}") from exc
    if b"\x00" in data[:4096]:
        raise LoaderError("文件内容是二进制数据，不是文本")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise LoaderError("无法识别文件编码（既不是 UTF-8 也不是 GB18030）")
