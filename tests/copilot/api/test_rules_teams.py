"""Managers' rules scoped per team, through the real app: a manager's rules are their team's and fire only
for that team's customers; a manager edits only their team's rules (403 for company-wide and other teams'
rules, nothing written), sees company-wide and their team's rules and audit lines only; an admin edits
everything; a rules file without scopes keeps firing for everyone; a team rule's preview counts that team."""

from __future__ import annotations

import json

import pytest

from copilot.agent.rules import default_rules_text
from tests.copilot.conftest import token_for

AS_OF = "2026-11-20"
EVERYONE = 'tier != ""'  # true for c_a1, c_a2 (team t_a) and c_b1 (team t_b)


@pytest.fixture
def teams(crm_services):
    """The small CRM (甲组 t_a: rep_a, rep_a2, mgr_a; 乙组 t_b: rep_b) plus mgr_b, without a KB."""
    crm_services.provide("kb", None)
    crm_services.users.upsert_user({"id": "mgr_b", "name": "赵经理", "role": "manager", "team_id": "t_b"})
    return crm_services


def _rules_file(services):
    return services.settings.home / "rules.yaml"


def _create(client, services, user, description, **extra):
    body = {"expression": EVERYONE, "action_type": "escalate", "description": description, **extra}
    r = client.post("/api/rules", json=body, headers=token_for(services, user))
    assert r.status_code == 201, r.text
    return r.json()["rule"]


def _fires_for(client, services, customer, description) -> bool:
    r = client.get(
        f"/api/customers/{customer}/suggestions",
        params={"as_of": AS_OF},
        headers=token_for(services, "admin"),
    )
    assert r.status_code == 200, r.text
    return any(description in s["title"] + s["rationale"] for s in r.json()["suggestions"])


def _listed(client, services, user):
    r = client.get("/api/rules", headers=token_for(services, user))
    assert r.status_code == 200, r.text
    return {rule["id"]: rule for rule in r.json()["rules"]}


def test_a_managers_rule_belongs_to_their_team_and_fires_only_for_its_customers(teams, client_for):
    client = client_for(teams)
    rule = _create(client, teams, "mgr_a", "甲组大客户升级")
    assert (rule["team_id"], rule["scope"]) == ("t_a", "甲组")
    assert "team_id: t_a" in _rules_file(teams).read_text(encoding="utf-8")

    assert _fires_for(client, teams, "c_a1", "甲组大客户升级")
    assert _fires_for(client, teams, "c_a2", "甲组大客户升级")
    assert not _fires_for(client, teams, "c_b1", "甲组大客户升级")  # rep_b's customer, team t_b
    own = client.get(  # and as team B's rep sees it
        "/api/customers/c_b1/suggestions", params={"as_of": AS_OF}, headers=token_for(teams, "rep_b")
    ).json()["suggestions"]
    assert not any("甲组大客户升级" in s["title"] + s["rationale"] for s in own)

    asked_for_b = client.post(  # a manager cannot write a rule for another team
        "/api/rules",
        json={"expression": EVERYONE, "action_type": "other", "description": "越权", "team_id": "t_b"},
        headers=token_for(teams, "mgr_a"),
    )
    assert asked_for_b.status_code == 403 and asked_for_b.json()["error"] == "forbidden"


def test_a_manager_cannot_edit_company_wide_or_another_teams_rules_but_an_admin_can(teams, client_for):
    client = client_for(teams)
    company = _create(client, teams, "admin", "全公司规则")
    team_b = _create(client, teams, "admin", "乙组规则", team_id="t_b")
    own = _create(client, teams, "mgr_a", "甲组规则")
    assert (company["team_id"], company["scope"]) == (None, "全公司")
    assert (team_b["team_id"], team_b["scope"]) == ("t_b", "乙组")
    before = _rules_file(teams).read_bytes()

    mgr_a = token_for(teams, "mgr_a")
    body = {"expression": 'tier == "A"', "action_type": "other", "description": "改掉"}
    for rule_id in (company["id"], team_b["id"], "visit_cadence"):
        r = client.put(f"/api/rules/{rule_id}", json=body, headers=mgr_a)
        assert r.status_code == 403, (rule_id, r.text)
        error = r.json()
        assert error["error"] == "forbidden" and error["request_id"] and "本团队" in error["detail"]
    assert client.get(f"/api/rules/{team_b['id']}/history", headers=mgr_a).status_code == 403
    assert _rules_file(teams).read_bytes() == before  # nothing written, no version kept aside

    mine = client.put(f"/api/rules/{own['id']}", json=body, headers=mgr_a)
    assert mine.status_code == 200 and mine.json()["rule"]["team_id"] == "t_a"

    admin = token_for(teams, "admin")
    for rule in (company, team_b, own):
        r = client.put(f"/api/rules/{rule['id']}", json=body, headers=admin)
        assert r.status_code == 200, r.text
        assert r.json()["rule"]["team_id"] == rule["team_id"]  # an edit keeps the scope
    moved = client.put(f"/api/rules/{own['id']}", json={**body, "team_id": "t_b"}, headers=admin)
    assert moved.status_code == 422 and "适用范围" in moved.json()["detail"]
    unknown = client.post("/api/rules", json={**body, "team_id": "t_x"}, headers=admin)
    assert unknown.status_code == 422 and "找不到团队" in unknown.json()["detail"]


def test_manager_b_sees_neither_team_as_rules_nor_their_audit(teams, client_for):
    client = client_for(teams)
    company = _create(client, teams, "admin", "全公司规则")
    team_a = _create(client, teams, "mgr_a", "甲组专属规则")
    team_b = _create(client, teams, "mgr_b", "乙组专属规则")

    seen_by_b = _listed(client, teams, "mgr_b")
    assert team_a["id"] not in seen_by_b and {company["id"], team_b["id"], "visit_cadence"} <= set(seen_by_b)
    assert seen_by_b[team_b["id"]]["editable"] and not seen_by_b[company["id"]]["editable"]
    assert set(_listed(client, teams, "admin")) >= {company["id"], team_a["id"], team_b["id"]}

    audit_b = client.get("/api/rules/audit", headers=token_for(teams, "mgr_b")).json()["audit"]
    assert [a["rules"] for a in audit_b] == [[team_b["id"]], [company["id"]]]
    audit_a = client.get("/api/rules/audit", headers=token_for(teams, "mgr_a")).json()["audit"]
    assert [a["rules"] for a in audit_a] == [[team_a["id"]], [company["id"]]]
    assert len(client.get("/api/rules/audit", headers=token_for(teams, "admin")).json()["audit"]) == 3
    history = client.get(f"/api/rules/{team_b['id']}/history", headers=token_for(teams, "mgr_b")).json()
    assert [h["op"] for h in history["history"]] == ["create"]

    page = client.get("/dashboard/rules", headers=token_for(teams, "mgr_b"))
    assert page.status_code == 200
    assert "甲组专属规则" not in page.text and "乙组专属规则" in page.text and "全公司" in page.text
    assert f'class="edit" data-id="{team_b["id"]}"' in page.text
    assert f'class="edit" data-id="{company["id"]}"' not in page.text  # the server refuses it anyway
    admin_page = client.get("/dashboard/rules", headers=token_for(teams, "admin")).text
    assert '<select name="team_id">' in admin_page and '<select name="team_id">' not in page.text
    assert f'class="edit" data-id="{team_a["id"]}"' in admin_page

    served = client.get("/api/suggestion-rules", headers=token_for(teams, "rep_b")).json()
    ids = {r["id"] for r in served["rules"]["rules"]}
    assert team_a["id"] not in ids and team_b["id"] in ids and "甲组专属规则" not in served["yaml"]
    for user in ("rep_a", "rep_b"):  # reps stay out of /api/rules
        assert client.get("/api/rules", headers=token_for(teams, user)).status_code == 403


def test_an_old_rules_file_without_scopes_loads_and_fires_for_everyone(teams, client_for):
    old_rule = (
        "\n  - id: old_condition\n    kind: condition\n    enabled: true\n    description: 旧版全员规则\n"
        f"    action_type: other\n    expression: '{EVERYONE}'\n"
    )
    _rules_file(teams).write_text(default_rules_text() + old_rule, encoding="utf-8")
    old_line = {"at": "2026-01-05T08:00:00+00:00", "by": "mgr_a", "op": "create", "rules": ["old_condition"]}
    (teams.settings.home / "rules_audit.jsonl").write_text(json.dumps(old_line) + "\n", encoding="utf-8")
    client = client_for(teams)

    assert all(_fires_for(client, teams, c, "旧版全员规则") for c in ("c_a1", "c_a2", "c_b1"))
    listed = _listed(client, teams, "mgr_a")
    assert all(r["team_id"] is None and r["scope"] == "全公司" for r in listed.values())
    assert (
        not listed["old_condition"]["editable"]
        and _listed(client, teams, "admin")["old_condition"]["editable"]
    )
    audit = client.get("/api/rules/audit", headers=token_for(teams, "mgr_b")).json()["audit"]
    assert [a["rules"] for a in audit] == [["old_condition"]]  # lines from before scopes: company-wide


def test_a_team_rules_preview_counts_only_that_teams_customers(teams, client_for):
    client = client_for(teams)

    def preview(user, **extra):
        body = {"expression": EVERYONE, "as_of": AS_OF, **extra}
        r = client.post("/api/rules/preview", json=body, headers=token_for(teams, user))
        assert r.status_code == 200, r.text
        return sorted(r.json()["customers"])

    assert preview("admin") == ["c_a1", "c_a2", "c_b1"]  # company-wide
    assert preview("admin", team_id="t_a") == preview("mgr_a") == ["c_a1", "c_a2"]
    assert preview("admin", team_id="t_b") == preview("mgr_b") == ["c_b1"]
    assert teams.rules_admin.preview(EVERYONE, team_id="t_b")["count"] == 1  # the CLI's --team


@pytest.fixture
def teams_kb(kb_services):
    """``teams`` with the small test KB (价格异议话术 for everyone, 乙组竞品打法 for 乙组 only)."""
    kb_services.users.upsert_user({"id": "mgr_b", "name": "赵经理", "role": "manager", "team_id": "t_b"})
    return kb_services


def _pending(services, *drafts, source="话术/价格异议话术.md"):
    quote = {"source": source, "quote": "制度原文"}
    rows = [{"description": "草稿", "action_type": "other", "expression": EVERYONE, "citation": quote, **d}
            for d in drafts]  # fmt: skip
    (services.settings.home / "rule_drafts.json").write_text(json.dumps({"drafts": rows}), encoding="utf-8")


def test_approved_drafts_become_the_approvers_teams_rules(teams_kb, client_for):
    teams = teams_kb
    client = client_for(teams)
    _pending(teams, {"id": "rd_a"}, {"id": "rd_b"}, {"id": "rd_preset", "preset": "visit_cadence"})
    mgr_a, admin = token_for(teams, "mgr_a"), token_for(teams, "admin")

    r = client.post("/api/rules/drafts/rd_a/approve", headers=mgr_a)
    assert r.status_code == 200, r.text
    rules = {x["id"]: x for x in r.json()["rules"]}
    assert rules["rd_a"]["team_id"] == "t_a"
    before = _rules_file(teams).read_bytes()
    preset = client.post("/api/rules/drafts/rd_preset/approve", headers=mgr_a)  # changes a company-wide rule
    assert preset.status_code == 403 and preset.json()["error"] == "forbidden"
    assert _rules_file(teams).read_bytes() == before

    r = client.post("/api/rules/drafts/rd_b/approve", json={"team_id": "t_b"}, headers=admin)
    assert r.status_code == 200 and {x["id"]: x for x in r.json()["rules"]}["rd_b"]["team_id"] == "t_b"
    assert client.post("/api/rules/drafts/rd_preset/approve", headers=admin).status_code == 200
    assert client.post("/api/rules/drafts/rd_nope/approve", headers=admin).status_code == 404
    assert "rd_b" not in _listed(client, teams, "mgr_a")


def test_a_manager_never_sees_or_decides_a_draft_quoting_another_teams_document(teams_kb, client_for):
    client = client_for(teams_kb)
    rows = [{"id": "rd_all", "description": "草稿", "action_type": "other", "expression": EVERYONE,
             "citation": {"source": "话术/价格异议话术.md", "quote": "原文"}},
            {"id": "rd_tb", "description": "乙组草稿", "action_type": "other", "expression": EVERYONE,
             "citation": {"source": "话术/乙组竞品打法.md", "quote": "乙组专用：可申请额外的演示设备"}}]  # fmt: skip
    (teams_kb.settings.home / "rule_drafts.json").write_text(json.dumps({"drafts": rows}), encoding="utf-8")

    def drafts(user):
        r = client.get("/api/rules", headers=token_for(teams_kb, user))
        assert r.status_code == 200, r.text
        return {d["id"] for d in r.json()["drafts"]}

    assert (
        drafts("mgr_a") == {"rd_all"}
        and drafts("mgr_b") == {"rd_all", "rd_tb"}
        and drafts("admin") == {"rd_all", "rd_tb"}
    )
    mgr_a = token_for(teams_kb, "mgr_a")
    for verb in ("approve", "reject"):
        r = client.post(f"/api/rules/drafts/rd_tb/{verb}", headers=mgr_a)
        assert r.status_code == 404 and "乙组" not in r.text
    assert drafts("mgr_b") == {"rd_all", "rd_tb"}  # still pending: nothing was decided
