"""`copilot crm import`: DESIGN §5.6 JSON, or CSV/XLSX customer sheets. Idempotent by id.

A bad record is reported (with its row number for sheets) and skipped; the rest still import.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import DataError

from connectors.crm.local import LocalCRM
from copilot.identity.users import UserDirectory
from copilot.storage import tables as t

# Sheet headers in Chinese or English → the §5.6 customer keys.
HEADER_ALIASES = {
    "id": "id", "客户编号": "id", "客户id": "id", "客户ID": "id", "编号": "id",
    "name": "name", "客户名称": "name", "名称": "name", "客户": "name",
    "tier": "tier", "等级": "tier", "客户等级": "tier", "分级": "tier",
    "industry": "industry", "行业": "industry",
    "region": "region", "区域": "region", "地区": "region",
    "owner_user_id": "owner_user_id", "owner": "owner_user_id", "负责人": "owner_user_id", "负责人ID": "owner_user_id",
    "notes": "notes", "备注": "notes",
}  # fmt: skip


@dataclass
class ImportReport:
    teams: int = 0
    users: int = 0
    customers_added: int = 0
    customers_updated: int = 0
    memos: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "teams": self.teams,
            "users": self.users,
            "customers": {"added": self.customers_added, "updated": self.customers_updated},
            "memos": self.memos,
            "errors": self.errors,
        }


class ImportFileError(ValueError):
    """The whole file cannot be read (bad JSON, unknown format)."""


class CRMImporter:
    def __init__(self, engine: Engine, crm: LocalCRM, users: UserDirectory) -> None:
        self._engine = engine
        self._crm = crm
        self._users = users

    def import_file(self, path: Path) -> ImportReport:
        suffix = path.suffix.lower()
        if suffix == ".json":
            try:
                data = json.loads(path.read_text(encoding="utf-8-sig"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ImportFileError(f"JSON 解析失败：{exc}") from exc
            if not isinstance(data, dict):
                raise ImportFileError("JSON 顶层必须是对象（包含 teams / users / customers / memos）")
            return self.import_data(data)
        if suffix == ".csv":
            return self._import_rows(_read_csv(path))
        if suffix in (".xlsx", ".xlsm"):
            return self._import_rows(_read_xlsx(path))
        raise ImportFileError(f"不支持的文件格式 {suffix or '（无扩展名）'}，可选：.json .csv .xlsx")

    def import_data(self, data: dict[str, Any]) -> ImportReport:
        report = ImportReport()
        for i, team in enumerate(data.get("teams") or [], start=1):
            try:
                self._users.upsert_team(str(team["id"]), str(team.get("name") or team["id"]))
                report.teams += 1
            except (KeyError, TypeError) as exc:
                report.errors.append({"section": "teams", "index": i, "message": f"团队记录缺少字段 {exc}"})
        for i, user in enumerate(data.get("users") or [], start=1):
            try:
                self._users.upsert_user(user)
                report.users += 1
            except (KeyError, TypeError, ValueError) as exc:
                report.errors.append({"section": "users", "index": i, "message": f"用户记录无效：{exc}"})
        for i, customer in enumerate(data.get("customers") or [], start=1):
            self._import_customer(customer, report, where={"section": "customers", "index": i})
        for i, memo in enumerate(data.get("memos") or [], start=1):
            try:
                self._upsert_memo(memo)
                report.memos += 1
            except (KeyError, TypeError) as exc:
                report.errors.append(
                    {"section": "memos", "index": i, "message": f"录音纪要记录缺少字段 {exc}"}
                )
        return report

    def _import_rows(self, rows: list[tuple[int, dict[str, Any]]]) -> ImportReport:
        report = ImportReport()
        for row_no, raw in rows:
            record: dict[str, Any] = {}
            for key, value in raw.items():
                if key is None or str(key).strip() == "":
                    continue
                name = HEADER_ALIASES.get(str(key).strip(), str(key).strip())
                if value is None or (isinstance(value, str) and value.strip() == ""):
                    continue
                record[name] = value.strip() if isinstance(value, str) else value
            if not record:
                continue  # blank line
            self._import_customer(record, report, where={"row": row_no})
        return report

    def _import_customer(self, record: Any, report: ImportReport, *, where: dict[str, Any]) -> None:
        if not isinstance(record, dict):
            report.errors.append({**where, "message": "客户记录必须是对象"})
            return
        if not record.get("id"):
            report.errors.append({**where, "message": "缺少客户编号（id）"})
            return
        if not record.get("name"):
            report.errors.append({**where, "message": f"客户 {record['id']} 缺少客户名称（name）"})
            return
        tier = record.get("tier")
        if tier not in (None, "") and str(tier).upper() not in ("A", "B", "C"):
            report.errors.append(
                {**where, "message": f"客户 {record['id']} 的等级 {tier!r} 无效，应为 A、B 或 C"}
            )
            return
        if tier:
            record = {**record, "tier": str(tier).upper()}
        if isinstance(record.get("id"), float) and record["id"].is_integer():
            record = {**record, "id": str(int(record["id"]))}
        try:
            added = self._crm.upsert_customer(record)
        except (KeyError, TypeError, ValueError) as exc:
            report.errors.append({**where, "message": f"客户 {record['id']} 数据无效：{exc}"})
            return
        except DataError:  # e.g. a NUL character, which PostgreSQL cannot store: skip this row only
            report.errors.append(
                {**where, "message": f"客户 {record['id']} 含数据库无法保存的字符（如空字符），已跳过"}
            )
            return
        if added:
            report.customers_added += 1
        else:
            report.customers_updated += 1

    def _upsert_memo(self, memo: dict[str, Any]) -> None:
        transcript = str(memo.get("transcript") or "")
        row = {
            "id": str(memo["id"]),
            "customer_id": memo.get("customer_id"),
            "user_id": memo.get("user_id"),
            "recorded_at": memo.get("recorded_at"),
            "status": "done",
            "transcript": transcript,
            "segments": memo.get("segments") or [],
        }
        with self._engine.begin() as conn:
            if conn.execute(select(t.memos.c.id).where(t.memos.c.id == row["id"])).first():
                conn.execute(update(t.memos).where(t.memos.c.id == row["id"]).values(**row))
            else:
                conn.execute(insert(t.memos).values(**row, created_at=datetime.now(UTC)))


def _read_csv(path: Path) -> list[tuple[int, dict[str, Any]]]:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in China often saves CSV as GBK
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ImportFileError("CSV 编码无法识别（请使用 UTF-8 或 GBK）")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        if not reader.fieldnames:
            raise ImportFileError("CSV 缺少表头行")
        # Row numbers as a spreadsheet shows them: the header is row 1.
        return [(i, dict(r)) for i, r in enumerate(reader, start=2)]
    except csv.Error as exc:  # e.g. a line break inside an unquoted cell
        raise ImportFileError(f"CSV 格式错误（第 {reader.line_num} 行附近）：{exc}") from None


def _read_xlsx(path: Path) -> list[tuple[int, dict[str, Any]]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a corrupt file
        raise ImportFileError(f"XLSX 文件无法打开：{type(exc).__name__}") from exc
    ws = wb.worksheets[0]
    rows = ws.iter_rows(values_only=True)
    header = next(rows, None)
    if not header:
        raise ImportFileError("XLSX 第一个工作表缺少表头行")
    out = []
    for i, values in enumerate(rows, start=2):
        out.append((i, {str(h) if h is not None else None: v for h, v in zip(header, values, strict=False)}))
    wb.close()
    return out
