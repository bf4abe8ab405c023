"""CSV and XLSX talk-track / FAQ sheets: each data row is one block whose fields map header → cell."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from knowledge_base.documents import LoadedDocument, Locator
from knowledge_base.loaders.base import LoaderError, TextBuilder, read_text_file, row_text


def _add_rows(builder: TextBuilder, rows: list[list[str]], sheet: str | None) -> None:
    rows = [[(c or "").strip() for c in row] for row in rows]
    rows = [row for row in rows if any(row)]
    if not rows:
        return
    header = [h or f"列{i + 1}" for i, h in enumerate(rows[0])]
    for index, row in enumerate(rows[1:], start=1):
        fields = {name: cell for name, cell in zip(header, row, strict=False) if cell}
        builder.block(row_text(fields), Locator(row=index, sheet=sheet), fields)


def load_csv(path: Path) -> LoadedDocument:
    text = read_text_file(path)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",\t;|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = list(csv.reader(io.StringIO(text), dialect))
    except csv.Error as exc:
        raise LoaderError(f"CSV 格式错误：{exc}") from exc
    builder = TextBuilder()
    _add_rows(builder, rows, None)
    if not builder.blocks:
        raise LoaderError("表格中没有数据行（第一行应为表头）")
    return builder.build()


def _cell(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "date") and hasattr(value, "isoformat"):
        return value.date().isoformat() if hasattr(value, "hour") else value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def load_xlsx(path: Path) -> LoadedDocument:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(str(path), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several types for a broken package
        raise LoaderError(f"Excel 文件损坏或不是 .xlsx 格式（{type(exc).__name__}）") from exc
    builder = TextBuilder()
    try:
        sheets = workbook.worksheets
        for sheet in sheets:
            rows = [[_cell(v) for v in row] for row in sheet.iter_rows(values_only=True)]
            _add_rows(builder, rows, sheet.title if len(sheets) > 1 else None)
        title = (workbook.properties.title or "").strip() or None
    finally:
        workbook.close()
    if not builder.blocks:
        raise LoaderError("表格中没有数据行（第一行应为表头）")
    return builder.build(title=title)
