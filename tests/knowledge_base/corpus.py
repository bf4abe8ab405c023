"""Writers for small real documents of every supported format (used by the loader, chunking and KB tests)."""

from __future__ import annotations

import csv
from pathlib import Path


def write_md(
    path: Path, sections: list[tuple[str, list[str]]], *, title: str | None = None, front: str = ""
) -> Path:
    lines = [f"---\n{front}---\n"] if front else []
    if title:
        lines.append(f"# {title}\n")
    for heading, paragraphs in sections:
        lines.append(f"## {heading}\n")
        lines.extend(p + "\n" for p in paragraphs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_txt(path: Path, sections: list[tuple[str, list[str]]], *, encoding: str = "utf-8") -> Path:
    parts = []
    for heading, paragraphs in sections:
        parts.append(heading)
        parts.extend(paragraphs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(parts), encoding=encoding)
    return path


def write_html(path: Path, sections: list[tuple[str, list[str]]], *, title: str = "网页") -> Path:
    body = "".join(f"<h2>{h}</h2>" + "".join(f"<p>{p}</p>" for p in paragraphs) for h, paragraphs in sections)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<html><head><title>{title}</title><script>var x='不要索引';</script></head><body>{body}</body></html>",
        encoding="utf-8",
    )
    return path


def write_pdf(path: Path, pages: list[list[str]]) -> Path:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf = canvas.Canvas(str(path))
    for lines in pages:
        pdf.setFont("STSong-Light", 11)
        y = 780
        for line in lines:
            if line == "":
                y -= 10
                continue
            pdf.drawString(60, y, line)
            y -= 18
        pdf.showPage()
    pdf.save()
    return path


def write_docx(
    path: Path,
    sections: list[tuple[str, list[str]]],
    *,
    table: list[list[str]] | None = None,
    page_break_after_section: bool = False,
) -> Path:
    import docx
    from docx.enum.text import WD_BREAK

    document = docx.Document()
    for n, (heading, paragraphs) in enumerate(sections):
        document.add_heading(heading, level=1)
        for p in paragraphs:
            document.add_paragraph(p)
        if page_break_after_section and n < len(sections) - 1:
            document.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))
    return path


def write_csv(path: Path, rows: list[list[str]], *, encoding: str = "utf-8-sig") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding=encoding, newline="") as fh:
        csv.writer(fh).writerows(rows)
    return path


def write_xlsx(path: Path, sheets: dict[str, list[list[str]]]) -> Path:
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(str(path))
    return path


TALK_TRACK_ROWS = [
    ["场景标签", "客户问题", "标准应答话术", "适用行业", "配套工具"],
    [
        "价格异议",
        "你们比竞品贵太多了",
        "先认同客户关注成本，再用三年总拥有成本对比说明我们更省。",
        "制造",
        "TCO计算器",
    ],
    [
        "预算冻结",
        "今年预算没了",
        "建议先做小范围试点，费用可以分期，明年预算再扩展。",
        "医疗",
        "试点方案模板",
    ],
    ["交付周期", "多久能上线", "标准版四周上线，含两次现场培训。", "通用", "实施计划表"],
]


def build_corpus(root: Path) -> Path:
    """A small knowledge base folder with every format, versions, teams and a broken file."""
    write_md(
        root / "话术" / "价格异议处理.md",
        [
            (
                "1. 客户嫌贵",
                ["客户说太贵了时，先认同客户的感受。再用总拥有成本（TCO）说明长期价值，不要急于降价。"],
            ),
            ("2. 预算冻结", ["客户说今年预算冻结时，可以提出分期付款，或者先做小范围试点。"]),
        ],
        title="价格异议处理话术",
        front="date: 2026-03-01\nindustry: 制造\n",
    )
    write_txt(
        root / "政策" / "2025年折扣政策.txt",
        [("1. 折扣权限", ["年度合同最高可给九折，由区域经理审批。发布日期：2025年1月1日。"])],
    )
    write_txt(
        root / "政策" / "2026年折扣政策.txt",
        [("1. 折扣权限", ["年度合同最高可给八五折，需要销售总监审批。发布日期：2026年1月1日。"])],
    )
    write_html(
        root / "竞品" / "竞品对比.html",
        [("1. 与友商A对比", ["友商A不支持私有化部署，我们支持本地机房部署。"])],
        title="竞品对比：友商A",
    )
    write_pdf(
        root / "产品" / "产品白皮书.pdf",
        [["1. 产品概述", "本产品是面向制造业的设备管理平台。", ""], ["2. 交付", "标准版交付周期为四周。"]],
    )
    write_docx(
        root / "案例" / "客户案例.docx",
        [
            ("华东汽车零部件厂", ["上线后设备停机时间下降了百分之三十。"]),
            ("某三甲医院", ["实现了医疗设备的全生命周期管理。"]),
        ],
        page_break_after_section=True,
    )
    write_csv(root / "话术" / "常见问题.csv", TALK_TRACK_ROWS)
    write_xlsx(
        root / "话术" / "话术库.xlsx",
        {"价格": TALK_TRACK_ROWS[:2], "交付": [TALK_TRACK_ROWS[0], TALK_TRACK_ROWS[3]]},
    )
    secret = write_md(
        root / "内部" / "团队B报价底线.md",
        [("1. 底价", ["团队B专用：旗舰版底价为每年十二万元。"])],
        title="团队B报价底线",
    )
    (secret.parent / (secret.name + ".meta.yaml")).write_text(
        "visibility: [team_b]\ntype: policy\n", encoding="utf-8"
    )
    (root / "坏文件.docx").write_bytes(b"this is not a zip file")
    return root
