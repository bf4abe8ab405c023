"""`copilot rules draft|approve|reject|list --json` through the same service as the HTTP API."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from copilot.cli import common
from copilot.cli.main import app

POLICY = "# 制度\n\n报价发出后7天内未与客户再次联系的，销售代表须跟进报价。回款逾期超过30天的，须升级至销售经理。\n"


class Doc:
    def __init__(self, path):
        self.path, self.doc_type, self.supersedes = path, "rules", None


class KB:
    def documents(self):
        return [Doc("rules/制度.md")]

    def document_text(self, path):
        return POLICY


def test_draft_reject_approve_and_list_are_audited(crm_services):
    crm_services.provide("kb", KB())
    common._services["s"] = crm_services
    run = CliRunner()
    drafts = json.loads(run.invoke(app, ["rules", "draft", "--json"]).stdout)["drafts"]
    assert len(drafts) == 2
    first, second = drafts[0]["id"], drafts[1]["id"]

    rejected = run.invoke(app, ["rules", "reject", first, "--by", "陈经理", "--reason", "暂不适用", "--json"])
    assert rejected.exit_code == 0 and json.loads(rejected.stdout) == {"rejected": [first]}
    again = run.invoke(app, ["rules", "reject", first])
    assert again.exit_code == 1 and "找不到规则草稿" in again.stderr

    approved = run.invoke(app, ["rules", "approve", second, "--by", "陈经理", "--json"])
    assert approved.exit_code == 0 and json.loads(approved.stdout) == {"approved": [second]}
    rules = json.loads(run.invoke(app, ["rules", "list", "--json"]).stdout)["rules"]
    assert any(r["meta"].get("draft_id") == second and r["meta"]["approved_by"] == "陈经理" for r in rules)
    ops = [(a["op"], a["by"]) for a in crm_services.rules_admin.audit()]
    assert ops == [("approve", "陈经理"), ("reject", "陈经理")]


def test_the_cli_approves_company_wide_by_default_and_for_a_team_with_team(crm_services):
    crm_services.provide("kb", KB())
    common._services["s"] = crm_services
    run = CliRunner()
    drafts = json.loads(run.invoke(app, ["rules", "draft", "--json"]).stdout)["drafts"]
    first, second = drafts[0]["id"], drafts[1]["id"]

    unknown = run.invoke(app, ["rules", "approve", first, "--team", "t_x"])
    assert unknown.exit_code == 1 and "找不到团队" in unknown.stderr
    assert run.invoke(app, ["rules", "approve", first]).exit_code == 0
    assert run.invoke(app, ["rules", "approve", second, "--team", "t_b"]).exit_code == 0

    rules = {r["id"]: r for r in json.loads(run.invoke(app, ["rules", "list", "--json"]).stdout)["rules"]}
    assert (rules[first]["team_id"], rules[first]["scope"]) == (None, "全公司")
    assert (rules[second]["team_id"], rules[second]["scope"]) == ("t_b", "乙组")
    assert rules["visit_cadence"]["scope"] == "全公司"  # the bundled rules are company-wide
    text = run.invoke(app, ["rules", "list"]).stdout
    assert f"[乙组] {second}" in text and f"[全公司] {first}" in text
