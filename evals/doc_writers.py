"""Writers for the generated binary test/demo documents (PDF with a CJK font, DOCX, XLSX) and their
``.meta.yaml`` sidecars. Used by the demo and eval-set generator scripts.

A document is a list of blocks: ("h1"|"h2"|"h3"|"p", text), ("table", [[header...], [row...]]),
("pagebreak", None).
"""

from __future__ import annotations

from pathlib import Path

import yaml


def write_pdf(path: Path, blocks: list, title: str, *, author: str) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    base = {"fontName": "STSong-Light", "wordWrap": "CJK"}
    styles = {
        "h1": ParagraphStyle("h1", fontSize=18, leading=26, spaceAfter=10, **base),
        "h2": ParagraphStyle("h2", fontSize=14, leading=20, spaceBefore=8, spaceAfter=6, **base),
        "h3": ParagraphStyle("h3", fontSize=12, leading=18, spaceBefore=6, spaceAfter=4, **base),
        "p": ParagraphStyle("p", fontSize=10.5, leading=17, spaceAfter=6, **base),
        "cell": ParagraphStyle("cell", fontSize=9.5, leading=14, **base),
    }
    story = []
    for kind, value in blocks:
        if kind == "pagebreak":
            story.append(PageBreak())
        elif kind == "table":
            data = [[Paragraph(str(c), styles["cell"]) for c in row] for row in value]
            table = Table(data, repeatRows=1)
            table.setStyle(
                TableStyle([("GRID", (0, 0), (-1, -1), 0.5, "#888888"), ("VALIGN", (0, 0), (-1, -1), "TOP")])
            )
            story += [table, Spacer(1, 4 * mm)]
        else:
            story.append(Paragraph(value, styles[kind]))
    doc = SimpleDocTemplate(
        str(path),
        pagesize=A4,
        title=title,
        author=author,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=20 * mm,
        bottomMargin=20 * mm,
    )
    doc.build(story)


def write_docx(path: Path, blocks: list, title: str, *, author: str) -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.core_properties.author = author
    for kind, value in blocks:
        if kind == "pagebreak":
            document.add_page_break()
        elif kind == "table":
            table = document.add_table(rows=0, cols=len(value[0]))
            table.style = "Table Grid"
            for row in value:
                cells = table.add_row().cells
                for cell, text in zip(cells, row, strict=True):
                    cell.text = str(text)
        elif kind in ("h1", "h2", "h3"):
            document.add_heading(value, level=int(kind[1]))
        else:
            document.add_paragraph(value)
    document.save(str(path))


def write_xlsx(path: Path, sheets: dict[str, list[list[str]]], title: str, *, author: str) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    wb = Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(row)
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for col, width in zip("ABCDE", (12, 30, 60, 12, 24), strict=False):
            ws.column_dimensions[col].width = width
        for row in ws.iter_rows(min_row=2):
            for cell in row:
                cell.alignment = Alignment(wrap_text=True, vertical="top")
    wb.properties.title = title
    wb.properties.creator = author
    wb.save(str(path))


def write_meta(path: Path, meta: dict) -> None:
    side = path.with_name(path.name + ".meta.yaml")
    side.write_text(yaml.safe_dump(meta, allow_unicode=True, sort_keys=False), encoding="utf-8")
