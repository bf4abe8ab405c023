"""/api/rules… through the real app: managers only, validation on save (422, Chinese detail), drafts from
the KB's rules document approved into rules that fire in the customer's suggestions, a preview that counts
exactly the customers that then get the suggestion, versions and the audit."""

from __future__ import annotations

import pytest

from copilot.container import build_container
from copilot.settings import Settings
from tests.copilot.conftest import token_for

AS_OF = "2026-11-20"
RULES_DOC = """# 客户跟进制度（测试）

版本日期：2026-03-01

单笔商机金额超过40万元的，须有售前工程师参与。
"""


@pytest.fixture
def rules_services(kb_services, tmp_path):
    folder = tmp_path / "rules_kb" / "rules"
    folder.mkdir(parents=True)
    (folder / "跟进制度.md").write_text(RULES_DOC, encoding="utf-8")
    (folder / "跟进制度.md.meta.yaml").write_text(
        "title: 客户跟进制度\ndate: '2026-03-01'\ntype: rules\nvisibility: all\n", encoding="utf-8"
    )
    kb_services.kb.ingest([tmp_path / "rules_kb"])
    return kb_services


def _suggestions(client, services, customer, user="mgr_a"):
    r = client.get(
        f"/api/customers/{customer}/suggestions", params={"as_of": AS_OF}, headers=token_for(services, user)
    )
    assert r.status_code == 200, r.text
    return r.json()["suggestions"]


def test_a_rep_gets_403_and_no_credential_401(crm_services, client_for):
    client = client_for(crm_services)
    rep = token_for(crm_services, "rep_a")
    for method, url, body in (
        ("get", "/api/rules", None),
        ("post", "/api/rules", {"expression": 'tier == "A"', "action_type": "other", "description": "x"}),
        ("post", "/api/rules/preview", {"expression": 'tier == "A"'}),
        ("post", "/api/rules/drafts", None),
        ("post", "/api/rules/drafts/rd_x/approve", None),
        ("get", "/api/rules/audit", None),
    ):
        r = client.request(method.upper(), url, json=body, headers=rep)
        assert r.status_code == 403, (url, r.text)
        assert r.json()["error"] == "forbidden" and r.json()["request_id"]
    assert client.get("/api/rules").status_code == 401
    page = client.get("/dashboard/rules", headers=rep)
    assert page.status_code == 403 and "仅限经理" in page.text


def test_previews_and_drafts_share_the_expensive_rate_limit(crm_services, client_for, monkeypatch):
    # a preview evaluates the condition over every customer the manager sees (one CRM read each; an
    # admin: the whole CRM), a redraft reads every policy document and may ask the model
    monkeypatch.setenv("COPILOT_RATE_LIMITS", "true")  # tests/conftest.py turns them off elsewhere
    monkeypatch.setenv("COPILOT_RATE_LIMIT_EXPENSIVE", "2/minute")
    services = build_container(Settings())
    services.provide("kb", None)
    client = client_for(services)
    mgr = token_for(services, "mgr_a")
    body = {"expression": 'tier == "A"', "as_of": AS_OF}
    assert client.post("/api/rules/preview", json=body, headers=mgr).status_code == 200
    assert client.post("/api/rules/drafts", headers=mgr).status_code == 200
    limited = client.post("/api/rules/preview", json=body, headers=mgr)
    assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"


def test_an_invalid_expression_is_refused_with_422_and_a_chinese_detail_and_nothing_is_saved(
    crm_services, client_for
):
    client = client_for(crm_services)
    mgr = token_for(crm_services, "mgr_a")
    before = client.get("/api/rules", headers=mgr).json()["rules"]
    for expression in ('__import__("os").system("id")', "opp.amount >", "foo.bar > 1"):
        r = client.post(
            "/api/rules",
            json={"expression": expression, "action_type": "escalate", "description": "测试"},
            headers=mgr,
        )
        assert r.status_code == 422, r.text
        body = r.json()
        assert set(body) >= {"error", "detail", "request_id"} and body["error"] == "validation_error"
        assert any("\u4e00" <= ch <= "\u9fff" for ch in body["detail"]), body
        assert (
            client.post("/api/rules/preview", json={"expression": expression}, headers=mgr).status_code == 422
        )
    bad_action = client.post(
        "/api/rules",
        json={"expression": 'tier == "A"', "action_type": "launch", "description": "测试"},
        headers=mgr,
    )
    assert bad_action.status_code == 422 and "动作类型" in bad_action.json()["detail"]
    assert client.get("/api/rules", headers=mgr).json()["rules"] == before
    assert client.get("/api/rules/audit", headers=mgr).json()["audit"] == []


def test_an_approved_draft_fires_in_the_suggestions_and_the_preview_counts_those_customers(
    rules_services, client_for
):
    client = client_for(rules_services)
    mgr = token_for(rules_services, "mgr_a")
    drafts = client.post("/api/rules/drafts", headers=mgr).json()["drafts"]
    draft = next(d for d in drafts if "400000" in d["expression"])
    assert draft["citation"]["quote"] in RULES_DOC
    assert draft["preview"]["message"] == f"将对 {draft['preview']['count']} 个客户触发"
    assert draft["preview"]["names"] == ["华星电子"]  # c_b1 (another team) is neither counted nor named

    visible = ["c_a1", "c_a2"]

    def fired() -> set[str]:
        return {
            c for c in visible
            if any(s["action_type"] == draft["action_type"] and "售前" in s["title"] + s["rationale"]
                   for s in _suggestions(client, rules_services, c))
        }  # fmt: skip

    assert fired() == set()
    r = client.post(f"/api/rules/drafts/{draft['id']}/approve", headers=mgr)
    assert r.status_code == 200, r.text
    assert r.json()["approved"] == [draft["id"]]
    preview = client.post(
        "/api/rules/preview", json={"expression": draft["expression"], "as_of": AS_OF}, headers=mgr
    ).json()
    after = fired()
    assert after == {"c_a1"} and preview["count"] == len(after) == 1
    assert preview["customers"] == ["c_a1"] and preview["names"] == ["华星电子"]

    listed = client.get("/api/rules", headers=mgr).json()
    assert all(d["id"] != draft["id"] for d in listed["drafts"])  # approved drafts leave the queue
    rule = next(x for x in listed["rules"] if x["meta"].get("draft_id") == draft["id"])
    assert rule["enabled"] and rule["meta"]["approved_by"] == "mgr_a" and rule["meta"]["version"] == 1
    audit = client.get("/api/rules/audit", headers=mgr).json()["audit"]
    assert audit[0]["op"] == "approve" and audit[0]["by"] == "mgr_a" and draft["id"] in audit[0]["approved"]
    assert client.post(f"/api/rules/drafts/{draft['id']}/approve", headers=mgr).status_code == 404


def test_create_edit_versions_history_and_reject(rules_services, client_for):
    client = client_for(rules_services)
    mgr = token_for(rules_services, "mgr_a")
    body = {"expression": 'tier == "A"', "action_type": "schedule_visit", "description": "A 类客户回访"}
    created = client.post("/api/rules", json=body, headers=mgr)
    assert created.status_code == 201, created.text
    rule = created.json()["rule"]
    assert rule["meta"]["version"] == 1 and rule["meta"]["origin"] == "manager"
    edited = client.put(f"/api/rules/{rule['id']}", json={**body, "expression": 'tier == "B"'}, headers=mgr)
    assert edited.status_code == 200 and edited.json()["rule"]["meta"]["version"] == 2
    bad = client.put(f"/api/rules/{rule['id']}", json={**body, "expression": "tier =="}, headers=mgr)
    assert bad.status_code == 422
    history = client.get(f"/api/rules/{rule['id']}/history", headers=mgr).json()
    assert [h["op"] for h in history["history"]] == ["edit", "create"]
    assert (
        history["history"][0]["before"] == 'tier == "A"' and history["history"][0]["after"] == 'tier == "B"'
    )
    assert history["rule"]["expression"] == 'tier == "B"'
    versions = client.get("/api/rules", headers=mgr).json()["versions"]
    assert versions[0]["current"] and versions[0]["version"] == len(versions) >= 2
    assert client.put("/api/rules/nope", json=body, headers=mgr).status_code == 404

    drafts = client.post("/api/rules/drafts", headers=mgr).json()["drafts"]
    rejected = client.post(
        f"/api/rules/drafts/{drafts[0]['id']}/reject", json={"reason": "不适用"}, headers=mgr
    )
    assert rejected.status_code == 200 and rejected.json()["rejected"] == [drafts[0]["id"]]
    assert drafts[0]["id"] not in {d["id"] for d in client.get("/api/rules", headers=mgr).json()["drafts"]}
    assert client.get("/api/rules/audit", headers=mgr).json()["audit"][0]["op"] == "reject"


def test_the_rules_page_shows_drafts_with_their_sentence_and_the_preview(rules_services, client_for):
    client = client_for(rules_services)
    mgr = token_for(rules_services, "mgr_a")
    client.post("/api/rules/drafts", headers=mgr)
    page = client.get("/dashboard/rules", headers=mgr)
    assert page.status_code == 200
    assert "单笔商机金额超过40万元的，须有售前工程师参与" in page.text
    assert "将对 1 个客户触发" in page.text and "华星电子" in page.text and "南山零售" not in page.text
    assert 'class="approve"' in page.text and "/static/rules.js" in page.text


def test_two_rules_written_at_once_get_their_own_ids_and_control_characters_are_refused(
    crm_services, client_for
):
    client = client_for(crm_services)
    mgr = token_for(crm_services, "mgr_a")
    body = {"expression": 'tier == "A"', "action_type": "other", "description": "同一条件"}
    ids = {client.post("/api/rules", json=body, headers=mgr).json()["rule"]["id"] for _ in range(2)}
    assert len(ids) == 2
    r = client.post("/api/rules", json={**body, "description": "a\u0000b"}, headers=mgr)
    assert r.status_code == 422 and "控制字符" in r.json()["detail"]
