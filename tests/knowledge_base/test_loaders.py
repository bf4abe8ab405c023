"""Loaders: every format yields exact block offsets and locators; metadata resolves in priority order;
corrupt and unsupported files fail with a Chinese reason."""

from __future__ import annotations

import pytest

from knowledge_base.documents import LoadedDocument
from knowledge_base.loaders import LoaderError, load_document
from knowledge_base.metadata import date_from_text, folder_metadata, read_yaml, resolve, sidecar_path
from tests.knowledge_base.corpus import (
    TALK_TRACK_ROWS,
    write_csv,
    write_docx,
    write_html,
    write_md,
    write_pdf,
    write_txt,
    write_xlsx,
)

SECTIONS = [("1. 客户嫌贵", ["先认同。再讲价值！", "第二段：算总账。"]), ("2. 没有预算", ["先做试点。"])]


def _texts(doc: LoadedDocument) -> list[str]:
    return [doc.text[b.start : b.end] for b in doc.blocks]


def test_markdown_sections_paragraphs_and_front_matter(tmp_path):
    doc = load_document(write_md(tmp_path / "a.md", SECTIONS, title="话术", front="date: 2026-03-01\n"))
    assert _texts(doc) == ["先认同。再讲价值！", "第二段：算总账。", "先做试点。"]
    assert [(b.locator.section, b.locator.paragraph) for b in doc.blocks] == [("1", 1), ("1", 2), ("2", 1)]
    assert doc.blocks[0].locator.heading == "1. 客户嫌贵"
    assert doc.title == "话术" and str(doc.metadata["date"]) == "2026-03-01"


def test_markdown_table_rows_keep_header_fields(tmp_path):
    path = tmp_path / "t.md"
    path.write_text(
        "## 话术表\n\n| 客户问题 | 标准应答话术 |\n|---|---|\n| 太贵 | 算总账 |\n| 没预算 | 分期 |\n", "utf-8"
    )
    doc = load_document(path)
    assert [b.fields for b in doc.blocks] == [
        {"客户问题": "太贵", "标准应答话术": "算总账"},
        {"客户问题": "没预算", "标准应答话术": "分期"},
    ]
    assert [b.locator.row for b in doc.blocks] == [1, 2]
    assert "客户问题：太贵" in _texts(doc)[0]


def test_txt_numbered_lines_are_sections_and_gb18030_is_decoded(tmp_path):
    doc = load_document(write_txt(tmp_path / "a.txt", SECTIONS, encoding="gb18030"))
    assert _texts(doc) == ["先认同。再讲价值！", "第二段：算总账。", "先做试点。"]
    assert doc.blocks[2].locator.section == "2"


def test_html_skips_scripts_and_keeps_headings(tmp_path):
    doc = load_document(write_html(tmp_path / "a.html", SECTIONS, title="竞品"))
    assert "不要索引" not in doc.text
    assert doc.title == "竞品"
    assert [b.locator.section for b in doc.blocks] == ["1", "1", "2"]


def test_pdf_blocks_carry_page_numbers(tmp_path):
    doc = load_document(
        write_pdf(tmp_path / "a.pdf", [["1. 概述", "第一页的内容。"], ["2. 交付", "四周交付。"]])
    )
    assert _texts(doc) == ["第一页的内容。", "四周交付。"]
    assert [(b.locator.page, b.locator.section, b.locator.paragraph) for b in doc.blocks] == [
        (1, "1", 1),
        (2, "2", 1),
    ]


def test_docx_headings_tables_and_page_breaks(tmp_path):
    path = write_docx(tmp_path / "a.docx", SECTIONS, table=TALK_TRACK_ROWS[:3], page_break_after_section=True)
    doc = load_document(path)
    paragraphs = [b for b in doc.blocks if b.locator.row is None]
    rows = [b for b in doc.blocks if b.locator.row is not None]
    assert [doc.text[b.start : b.end] for b in paragraphs] == [
        "先认同。再讲价值！",
        "第二段：算总账。",
        "先做试点。",
    ]
    assert [b.locator.page for b in paragraphs] == [1, 1, 2]
    assert rows[0].fields["客户问题"] == "你们比竞品贵太多了" and rows[1].locator.row == 2


def test_csv_and_xlsx_rows_are_blocks_with_fields(tmp_path):
    csv_doc = load_document(write_csv(tmp_path / "a.csv", TALK_TRACK_ROWS, encoding="gb18030"))
    assert len(csv_doc.blocks) == 3
    assert csv_doc.blocks[1].fields["标准应答话术"].startswith("建议先做小范围试点")
    assert csv_doc.blocks[1].locator.row == 2
    xlsx_doc = load_document(
        write_xlsx(tmp_path / "a.xlsx", {"价格": TALK_TRACK_ROWS[:2], "交付": TALK_TRACK_ROWS[::3]})
    )
    assert [(b.locator.sheet, b.locator.row) for b in xlsx_doc.blocks] == [("价格", 1), ("交付", 1)]
    assert xlsx_doc.blocks[1].fields["配套工具"] == "实施计划表"


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("bad.docx", b"not a zip", "Word"),
        ("bad.xlsx", b"not a zip", "Excel"),
        ("bad.pdf", b"%PDF-1.4 garbage", "PDF"),
        ("empty.txt", b"   \n\n ", "没有可读取的文字"),
        ("a.pptx", b"x", "不支持的文件格式"),
    ],
)
def test_corrupt_or_unsupported_files_raise_a_chinese_reason(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LoaderError) as caught:
        load_document(path)
    assert reason in caught.value.reason


def test_metadata_priority_sidecar_over_front_matter_over_text_over_folder(tmp_path):
    root = tmp_path / "kb"
    path = write_md(
        root / "话术" / "价格.md",
        [("1. 价格", ["版本日期：2024-05-01 的内容。"])],
        front="title: 前言标题\ndate: 2025-02-01\nindustry: 医疗\n",
    )
    (root / "话术" / ".meta.yaml").write_text("product: 旗舰版\nvisibility: [team_a]\n", "utf-8")
    doc = load_document(path)

    def resolved(sidecar):
        return resolve(doc, rel_path="话术/价格.md", sidecar=sidecar, folder_meta=folder_metadata(path, root))

    meta = resolved({})
    assert (meta.title, meta.date, meta.doc_type, meta.industry) == (
        "前言标题",
        "2025-02-01",
        "talk_track",
        "医疗",
    )
    assert meta.product == "旗舰版" and meta.visibility == ("team_a",)
    sidecar_path(path).write_text(
        "title: 边车标题\ndate: 2026年3月1日\ntype: objection\nvisibility: all\n", "utf-8"
    )
    meta = resolved(read_yaml(sidecar_path(path)))
    assert (meta.title, meta.date, meta.doc_type, meta.visibility) == (
        "边车标题",
        "2026-03-01",
        "objection",
        ("all",),
    )


def test_date_lines_and_folder_types_fill_in_when_nothing_is_declared(tmp_path):
    assert date_from_text("标题\n\n版本日期：2026-03-01\n正文") == "2026-03-01"
    assert date_from_text("政策\n2026年3月1日发布\n") == "2026-03-01"
    assert date_from_text("没有日期") is None
    doc = load_document(write_txt(tmp_path / "x.txt", [("1. 范围", ["生效日期：2026年1月15日。"])]))
    meta = resolve(doc, rel_path="talk_tracks/sub/x.txt", sidecar={}, folder_meta={})
    assert (meta.title, meta.date, meta.doc_type, meta.visibility) == (
        "x",
        "2026-01-15",
        "talk_track",
        ("all",),
    )
    assert resolve(doc, rel_path="misc/x.txt", sidecar={}, folder_meta={}).doc_type == "other"
