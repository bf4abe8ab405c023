"""`copilot kb ingest|search` and `copilot users token` through the real CLI (typer's CliRunner)."""

import json
import shutil

from typer.testing import CliRunner

from copilot.cli import common
from copilot.cli.main import app
from tests.copilot.conftest import DATA

runner = CliRunner()


def _cli(*args):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_ingest_is_incremental_and_search_respects_the_users_team(tmp_path, embedder):
    common.services().provide("embedder", embedder)
    kb = tmp_path / "kb"
    shutil.copytree(DATA / "kb", kb)
    _cli("crm", "import", str(DATA / "crm_small.json"), "--json")

    first = _cli("kb", "ingest", str(kb), "--json")
    again = _cli("kb", "ingest", str(kb), "--json")
    (kb / "话术" / "乙组竞品打法.md").unlink()
    (kb / "坏文件.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
    third = _cli("kb", "ingest", str(kb), "--json")

    assert (first["added"], first["updated"], first["unchanged"], first["removed"]) == (2, 0, 0, 0)
    assert (again["added"], again["unchanged"]) == (0, 2)
    assert third["removed"] == 1 and third["unchanged"] == 1
    assert [f["path"] for f in third["failed"]] == ["坏文件.pdf"] and third["failed"][0]["reason"]

    hits = _cli("kb", "search", "客户嫌贵怎么回", "-k", "3", "--user", "rep_a", "--json")["results"]
    assert hits and hits[0]["document"] == "话术/价格异议话术.md"
    top = hits[0]
    assert top["label"].startswith("依据《价格异议话术》2026-03-01") and top["locator"]
    assert top["text"] in (kb / "话术" / "价格异议话术.md").read_text(encoding="utf-8")


def test_search_hides_team_only_documents_from_other_teams(tmp_path, embedder):
    common.services().provide("embedder", embedder)
    _cli("crm", "import", str(DATA / "crm_small.json"), "--json")
    _cli("kb", "ingest", str(DATA / "kb"), "--json")

    as_a = _cli("kb", "search", "海拓物联 传感器寿命", "-k", "10", "--user", "rep_a", "--json")["results"]
    as_b = _cli("kb", "search", "海拓物联 传感器寿命", "-k", "10", "--user", "rep_b", "--json")["results"]

    assert all(h["document"] != "话术/乙组竞品打法.md" for h in as_a)
    assert as_b[0]["document"] == "话术/乙组竞品打法.md"


def test_users_token_json_and_unknown_user(tmp_path):
    _cli("crm", "import", str(DATA / "crm_small.json"), "--json")

    issued = _cli("users", "token", "rep_a", "--json")

    assert issued["user_id"] == "rep_a" and issued["token"].startswith("cpt_")
    assert common.services().users.authenticate(issued["token"]).id == "rep_a"
    missing = runner.invoke(app, ["users", "token", "nobody"])
    assert missing.exit_code == 1 and "不存在" in missing.output
