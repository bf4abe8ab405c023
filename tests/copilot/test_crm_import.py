import json

from sqlalchemy import func, select
from typer.testing import CliRunner

from connectors.crm import local_schema as crm_t
from copilot.cli.main import app
from tests.copilot.conftest import DATA

runner = CliRunner()


def _counts(services):
    with services.engine.connect() as conn:
        return {
            name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in [
                ("customers", crm_t.customers),
                ("contacts", crm_t.contacts),
                ("opportunities", crm_t.opportunities),
                ("visits", crm_t.visits),
                ("purchases", crm_t.purchases),
                ("tasks", crm_t.tasks),
            ]
        }


def test_json_import_via_cli_is_idempotent():
    first = runner.invoke(app, ["crm", "import", str(DATA / "crm_small.json"), "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["customers"] == {"added": 3, "updated": 0}
    assert report["teams"] == 2 and report["users"] == 5 and report["memos"] == 1
    assert report["errors"] == []

    second = json.loads(runner.invoke(app, ["crm", "import", str(DATA / "crm_small.json"), "--json"]).stdout)
    assert second["customers"] == {"added": 0, "updated": 3}

    from copilot.cli.common import services

    assert _counts(services()) == {
        "customers": 3,
        "contacts": 3,
        "opportunities": 1,
        "visits": 1,
        "purchases": 2,
        "tasks": 1,
    }


def test_reimport_updates_changed_values(crm_services, tmp_path):
    from copilot.features.crm_import import CRMImporter

    data = json.loads((DATA / "crm_small.json").read_text(encoding="utf-8"))
    data["customers"][0]["tier"] = "B"
    data["customers"][0]["opportunities"][0]["stage"] = "赢单"
    f = tmp_path / "changed.json"
    f.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")

    report = CRMImporter(crm_services.engine, crm_services.local_crm, crm_services.users).import_file(f)

    snap = crm_services.crm.get_customer("c_a1")
    assert report.customers_updated == 3 and report.customers_added == 0
    assert snap.tier == "B" and snap.opportunities[0].stage == "赢单"
    assert len(snap.opportunities) == 1


def test_csv_import_reports_bad_rows_by_number_and_keeps_the_rest(crm_services):
    from copilot.features.crm_import import CRMImporter

    importer = CRMImporter(crm_services.engine, crm_services.local_crm, crm_services.users)
    report = importer.import_file(DATA / "customers.csv")

    assert report.customers_added == 2
    rows = {e["row"]: e["message"] for e in report.errors}
    assert set(rows) == {3, 4, 5}
    assert "缺少客户编号" in rows[3]
    assert "缺少客户名称" in rows[4]
    assert "等级" in rows[5] and "A、B 或 C" in rows[5]
    snap = crm_services.crm.get_customer("c_csv1")
    assert snap.name == "东方医疗" and snap.tier == "A" and snap.owner_user_id == "rep_a"
    assert snap.custom == {"年营收": "5亿"}  # unknown column kept as a custom field

    again = importer.import_file(DATA / "customers.csv")
    assert again.customers_added == 0 and again.customers_updated == 2


def test_xlsx_import(crm_services, tmp_path):
    from openpyxl import Workbook

    from copilot.features.crm_import import CRMImporter

    wb = Workbook()
    ws = wb.active
    ws.append(["id", "name", "tier", "industry", "owner_user_id", "渠道"])
    ws.append(["x1", "星河商超", "b", "零售", "rep_b", "经销商"])
    ws.append([None, None, None, None, None, None])
    ws.append([1002, "", "C", "制造业", "rep_b", None])
    path = tmp_path / "customers.xlsx"
    wb.save(path)

    report = CRMImporter(crm_services.engine, crm_services.local_crm, crm_services.users).import_file(path)

    assert report.customers_added == 1
    assert [e["row"] for e in report.errors] == [4]
    snap = crm_services.crm.get_customer("x1")
    assert snap.tier == "B" and snap.custom == {"渠道": "经销商"}


def test_malformed_json_gives_a_chinese_error_and_exit_code(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")

    result = runner.invoke(app, ["crm", "import", str(bad)])

    assert result.exit_code == 1
    assert "JSON 解析失败" in result.output


def test_unknown_format_is_refused(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("x", encoding="utf-8")
    result = runner.invoke(app, ["crm", "import", str(f)])
    assert result.exit_code == 1 and "不支持的文件格式" in result.output
