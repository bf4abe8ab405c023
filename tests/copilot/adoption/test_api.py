"""GET /api/adoption, /dashboard, CSV export and managers' annotations on the real app (API tier)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.copilot.conftest import token_for

CONTRACT_KEYS = {"shown", "accepted", "edited", "dismissed", "ignored", "applied", "adoption_rate",
                 "by_rep", "by_action_type", "by_document"}  # fmt: skip
COUNT_KEYS = CONTRACT_KEYS - {"by_rep", "by_action_type", "by_document"}


@pytest.fixture
def client(log_services, client_for):
    return client_for(log_services)


def get(client, services, user, path, **params):
    return client.get(path, headers=token_for(services, user), params=params)


def test_adoption_has_exactly_the_contract_keys(client, log_services):
    data = get(client, log_services, "admin", "/api/adoption").json()
    assert set(data) == CONTRACT_KEYS
    assert all(set(r) == COUNT_KEYS | {"rep_id"} for r in data["by_rep"])
    assert all(set(r) == COUNT_KEYS | {"action_type"} for r in data["by_action_type"])
    assert all(set(r) == COUNT_KEYS | {"source"} for r in data["by_document"])


def test_admin_sees_every_team_with_hand_computed_numbers(client, log_services):
    data = get(client, log_services, "admin", "/api/adoption").json()
    assert {k: data[k] for k in COUNT_KEYS} == {
        "shown": 7, "accepted": 2, "edited": 1, "dismissed": 2, "ignored": 1, "applied": 1, "adoption_rate": 0.4286,
    }  # fmt: skip
    assert {r["rep_id"]: r["shown"] for r in data["by_rep"]} == {"rep_a": 3, "rep_a2": 2, "rep_b": 2}
    assert {r["source"]: (r["shown"], r["adoption_rate"]) for r in data["by_document"]} == {
        "talk/a.md": (3, 1.0), "talk/b.md": (2, 0.0),
    }  # fmt: skip
    only_b = get(client, log_services, "admin", "/api/adoption", team="t_b").json()
    assert (only_b["shown"], only_b["accepted"], only_b["dismissed"]) == (2, 1, 1)


def test_manager_sees_only_the_team(client, log_services):
    data = get(client, log_services, "mgr_a", "/api/adoption").json()
    assert {r["rep_id"] for r in data["by_rep"]} == {"rep_a", "rep_a2"}
    assert {k: data[k] for k in COUNT_KEYS} == {
        "shown": 5, "accepted": 1, "edited": 1, "dismissed": 1, "ignored": 1, "applied": 1, "adoption_rate": 0.4,
    }  # fmt: skip
    assert get(client, log_services, "mgr_a", "/api/adoption", team="t_b").status_code == 403
    assert get(client, log_services, "mgr_a", "/api/adoption", rep="rep_b").status_code == 403
    drill = get(client, log_services, "mgr_a", "/api/adoption/suggestions").json()
    assert {s["rep_id"] for s in drill["suggestions"]} == {"rep_a", "rep_a2"}


def test_filters_by_rep_type_document_and_dates(client, log_services):
    def shown(**params):
        return get(client, log_services, "admin", "/api/adoption", **params).json()["shown"]

    assert shown(rep="rep_a") == 3
    assert shown(action_type="schedule_visit") == 3
    assert shown(document="talk/b.md") == 2
    from datetime import UTC, datetime, timedelta

    today = datetime.now(UTC).date()
    assert shown(**{"from": (today - timedelta(days=6)).isoformat(), "to": today.isoformat()}) == 3
    bad = get(client, log_services, "admin", "/api/adoption", **{"from": "2026-13-01"})
    assert bad.status_code == 422 and bad.json()["error"] == "validation_error"


def test_reps_get_403_on_metrics_dashboard_and_exports(client, log_services):
    for path in ("/api/adoption", "/api/adoption/report", "/api/adoption/suggestions",
                 "/api/adoption/export/by_rep.csv", "/dashboard"):  # fmt: skip
        resp = get(client, log_services, "rep_a", path)
        assert resp.status_code == 403, path
    assert client.get("/api/adoption").status_code == 401
    assert client.get("/dashboard", follow_redirects=False).status_code == 303


def test_dashboard_shows_the_numbers_and_the_correlation_note(client, log_services):
    resp = get(client, log_services, "mgr_a", "/dashboard")
    assert resp.status_code == 200
    html = resp.text
    assert "AI 建议采纳率看板" in html and "40.0%" in html
    assert 'data-kpi="shown"' in html and ">5</a>" in html
    assert "不是因果" in html and "样本不足" in html
    assert "/static/vendor/chart.umd.min.js" in html and "cdn" not in html.lower()
    assert "rep_b" not in html  # not the manager's team
    assert client.get("/static/vendor/chart.umd.min.js").status_code == 200


def test_report_carries_time_to_action_trend_reuse_and_dismiss_reasons(client, log_services):
    report = get(client, log_services, "mgr_a", "/api/adoption/report").json()
    assert report["time_to_action"] == {"n": 3, "median_hours": 2.0, "mean_hours": 2.67}
    assert sum(w["shown"] for w in report["trend"]) == 5
    assert report["dismiss_reasons"] == [{"reason": "时机不对", "count": 1}]
    reuse = {r["source"]: (r["cited"], r["adopted"], r["reps"]) for r in report["knowledge_reuse"]}
    assert reuse == {"talk/a.md": (2, 2, 1), "talk/b.md": (2, 0, 2)}
    assert report["outcomes"]["comparable"] is False


def test_csv_export_of_a_table(client, log_services):
    resp = get(client, log_services, "mgr_a", "/api/adoption/export/by_rep.csv")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.content.decode("utf-8-sig"))))
    assert {r["rep_id"]: int(r["shown"]) for r in rows} == {"rep_a": 3, "rep_a2": 2}
    for name in ("summary", "trend", "by_team", "by_action_type", "by_channel", "by_document", "knowledge_reuse",
                 "dismissed", "outcomes", "suggestions", "ratings", "annotations"):  # fmt: skip
        assert get(client, log_services, "mgr_a", f"/api/adoption/export/{name}.csv").status_code == 200, name
    assert get(client, log_services, "mgr_a", "/api/adoption/export/nope.csv").status_code == 404


def test_manager_annotations_show_in_metrics_and_eval_export(client, log_services):
    headers = token_for(log_services, "mgr_a")
    ok = client.post("/api/suggestions/sg_3/annotations", headers=headers,
                     json={"verdict": "harmful", "note": "引用了旧价格"})  # fmt: skip
    assert ok.status_code == 200 and ok.json()["verdict_label"] == "有害"
    assert (
        client.post(
            "/api/suggestions/sg_1/annotations", headers=headers, json={"verdict": "correct"}
        ).status_code
        == 200
    )
    assert (
        client.post(
            "/api/suggestions/sg_2/annotations", headers=headers, json={"verdict": "wrong"}
        ).status_code
        == 422
    )  # a wrong verdict needs a note
    # another team's suggestion, and a rep, are refused
    assert (
        client.post(
            "/api/suggestions/sg_6/annotations", headers=headers, json={"verdict": "correct"}
        ).status_code
        == 404
    )
    assert (
        client.post(
            "/api/suggestions/sg_1/annotations",
            headers=token_for(log_services, "rep_a"),
            json={"verdict": "correct"},
        ).status_code
        == 403
    )
    report = client.get("/api/adoption/report", headers=headers).json()
    assert report["annotations"] == {"correct": 1, "wrong": 0, "harmful": 1}
    cases = [
        json.loads(line)
        for line in client.get("/api/adoption/eval-cases.jsonl", headers=headers).text.splitlines()
    ]
    by_id = {c["id"].split("_mgr_a")[0]: c for c in cases}
    assert by_id["review_sg_1"]["expected_actions"] == [
        {"action_type": "schedule_visit", "must_cite": ["crm:c_a1.profile", "kb:talk/a.md"]}
    ]
    assert by_id["review_sg_3"]["forbidden"][0]["action_type"] == "care_task"
    assert "引用了旧价格" in by_id["review_sg_3"]["forbidden"][0]["detail"]
    drill = client.get("/api/adoption/suggestions", headers=headers, params={"outcome": "dismissed"}).json()
    assert [s["id"] for s in drill["suggestions"]] == ["sg_3"]
    assert drill["suggestions"][0]["annotations"][0]["note"] == "引用了旧价格"
    assert drill["suggestions"][0]["citations"][1]["source"] == "talk/b.md"


def test_drill_down_names_the_customers(client, log_services):
    rows = get(client, log_services, "mgr_a", "/api/adoption/suggestions").json()["suggestions"]
    names = {r["customer_id"]: r["customer_name"] for r in rows}
    assert names["c_a1"] == "华星电子"  # from the CRM; an unknown customer keeps its id
    assert all(r["customer_name"] for r in rows)
    script = client.get("/static/dashboard.js").text
    assert "row.customer_name || row.customer_id" in script


def test_dashboard_dates_are_chinese_and_accept_chinese_input(client, log_services):
    from datetime import UTC, datetime, timedelta

    today = datetime.now(UTC).date()
    start = today - timedelta(days=6)
    zh = f"{start.year}年{start.month}月{start.day}日"
    api = get(client, log_services, "admin", "/api/adoption", **{"from": zh, "to": today.isoformat()})
    assert api.status_code == 200 and api.json()["shown"] == 3
    assert get(client, log_services, "admin", "/api/adoption", **{"from": "2026/11/01"}).status_code == 200

    html = get(client, log_services, "mgr_a", "/dashboard", **{"from": zh}).text
    assert 'name="from" inputmode="numeric"' in html and f'value="{zh}"' in html
    assert 'type="date"' not in html  # the browser's locale would show 11/01/2026
