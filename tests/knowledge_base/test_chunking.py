"""Chunking invariants: every chunk is an exact span of its document's text, stays inside one section
(page, sheet), respects the size limit and sentence ends, and loses no text — over generated documents
written in every supported format."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knowledge_base.chunking import chunk_document, make_chunks, sentence_spans
from knowledge_base.documents import Block, LoadedDocument, Locator
from knowledge_base.loaders import load_document
from tests.knowledge_base.corpus import (
    write_csv,
    write_docx,
    write_html,
    write_md,
    write_pdf,
    write_txt,
    write_xlsx,
)

_WORDS = [
    "客户",
    "价格",
    "预算",
    "交付",
    "我们",
    "方案",
    "试点",
    "审批",
    "服务",
    "TCO",
    "折扣",
    "竞品",
    "value",
]
_ENDS = ["。", "！", "？", "；", "，"]

sentence = st.builds(
    lambda words, end: "".join(words) + end,
    st.lists(st.sampled_from(_WORDS), min_size=1, max_size=30),
    st.sampled_from(_ENDS),
)
paragraph = st.lists(sentence, min_size=1, max_size=8).map("".join)
sections = st.lists(st.lists(paragraph, min_size=1, max_size=4), min_size=1, max_size=4).map(
    lambda secs: [(f"{n}. 第{n}节", paras) for n, paras in enumerate(secs, start=1)]
)
FORMATS = ["md", "txt", "html", "docx", "pdf", "csv", "xlsx"]


def _write(fmt: str, folder: Path, secs: list[tuple[str, list[str]]]) -> Path:
    path = folder / f"doc.{fmt}"
    if fmt == "md":
        return write_md(path, secs, title="标题")
    if fmt == "txt":
        return write_txt(path, secs)
    if fmt == "html":
        return write_html(path, secs)
    if fmt == "docx":
        return write_docx(
            path, secs, table=[["问题", "回答"], *[[h, p[0]] for h, p in secs]], page_break_after_section=True
        )
    if fmt == "pdf":
        # one section per page; short lines so that they fit the page width
        return write_pdf(
            path,
            [
                [h, *[p[i : i + 30] for para in ps for i in range(0, len(para), 30) for p in [para]]]
                for h, ps in secs
            ],
        )
    rows = [["场景", "话术"], *[[h, p] for h, ps in secs for p in ps]]
    return write_csv(path, rows) if fmt == "csv" else write_xlsx(path, {"表1": rows, "表2": rows[:2]})


def _key(locator: Locator) -> tuple:
    return (locator.page, locator.section, locator.heading, locator.sheet, locator.row)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secs=sections, fmt=st.sampled_from(FORMATS), max_chars=st.sampled_from([40, 120, 320]))
def test_chunks_are_exact_spans_inside_one_section_in_every_format(secs, fmt, max_chars):
    with tempfile.TemporaryDirectory() as tmp:
        doc = load_document(_write(fmt, Path(tmp), secs))
    chunks = make_chunks(doc, doc_path=f"doc.{fmt}", content_hash="h", max_chars=max_chars)
    assert chunks
    assert len({c.id for c in chunks}) == len(chunks)
    covered = set()
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text
        assert chunk.text == chunk.text.strip() and chunk.text
        assert len(chunk.text) <= max_chars
        overlapping = [b for b in doc.blocks if b.start < chunk.end and chunk.start < b.end]
        assert len({_key(b.locator) for b in overlapping}) == 1, "a chunk straddles two sections/pages/rows"
        assert _key(overlapping[0].locator) == _key(chunk.locator)
        covered.update(range(chunk.start, chunk.end))
    for block in doc.blocks:  # no text is lost between chunks
        assert all(i in covered for i in range(block.start, block.end) if not doc.text[i].isspace())


def _doc(paragraphs: list[str], *, section="1") -> LoadedDocument:
    text, blocks = "", []
    for n, p in enumerate(paragraphs, start=1):
        if text:
            text += "\n\n"
        blocks.append(Block(len(text), len(text) + len(p), Locator(section=section, paragraph=n)))
        text += p
    return LoadedDocument(text=text, blocks=tuple(blocks))


def test_long_paragraphs_split_at_chinese_sentence_ends():
    text = "第一句话比较长一些。第二句话也不短！第三句是问题吗？第四句；结尾"
    doc = _doc([text])
    spans = chunk_document(doc, max_chars=12)
    assert [doc.text[s.start : s.end] for s in spans] == [
        "第一句话比较长一些。",
        "第二句话也不短！",
        "第三句是问题吗？第四句；",
        "结尾",
    ]
    assert all(s.locator.paragraph == 1 for s in spans)


def test_short_paragraphs_of_one_section_are_packed_but_sections_never_mix():
    doc = _doc(["甲。", "乙。", "丙。"])
    spans = chunk_document(doc, max_chars=100)
    assert len(spans) == 1 and doc.text[spans[0].start : spans[0].end] == "甲。\n\n乙。\n\n丙。"
    two = LoadedDocument(
        text="甲。\n\n乙。",
        blocks=(
            Block(0, 2, Locator(section="1", paragraph=1)),
            Block(4, 6, Locator(section="2", paragraph=1)),
        ),
    )
    assert [(s.start, s.end, s.locator.section) for s in chunk_document(two)] == [(0, 2, "1"), (4, 6, "2")]


def test_sentence_spans_keep_closing_quotes_with_their_sentence():
    text = "他说：“太贵了。”我们回答：“算总账！”"
    assert [text[a:b] for a, b in sentence_spans(text, 0, len(text))] == [
        "他说：“太贵了。”",
        "我们回答：“算总账！”",
    ]
