"""GET /api/customers/{id}/suggestions, feedback and apply through the real app (offline planner)."""

from sqlalchemy import func, select

from copilot.storage import tables as t
from tests.copilot.conftest import token_for

AS_OF = "2026-11-20"


def _get(client, services, user="rep_a", customer="c_a1", as_of=AS_OF):
    return client.get(
        f"/api/customers/{customer}/suggestions", params={"as_of": as_of}, headers=token_for(services, user)
    )


def _events(services, event):
    with services.engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(t.suggestion_events).where(t.suggestion_events.c.event == event)
        ).scalar()


def test_suggestions_are_scoped_cited_and_logged_once(kb_services, client_for):
    client = client_for(kb_services)
    r = _get(client, kb_services)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["as_of"] == AS_OF and body["mode"] == "offline"
    sgs = body["suggestions"]
    assert {"schedule_visit", "escalate", "follow_up_quote"} <= {s["action_type"] for s in sgs}
    for s in sgs:
        assert s["id"].startswith("sg_") and s["status"] == "proposed" and s["citations"]
        assert set(s) == {"id", "customer_id", "action_type", "title", "rationale", "confidence", "citations",
                          "proposed_change", "status", "created_at"}  # fmt: skip
        assert all(c["label"].startswith("依据") for c in s["citations"])
    again = _get(client, kb_services).json()["suggestions"]
    assert [s["id"] for s in again] == [s["id"] for s in sgs]
    assert _events(kb_services, "proposed") == len(sgs) and _events(kb_services, "shown") == len(sgs)

    hidden = _get(client, kb_services, user="rep_b")  # another team's customer: the same 404 as a missing one
    assert hidden.status_code == 404 and hidden.json()["error"] == "customer_not_found"
    assert _get(client, kb_services, customer="nope").status_code == 404
    assert client.get("/api/customers/c_a1/suggestions").status_code == 401
    assert _get(client, kb_services, as_of="20-11").status_code == 422


def test_feedback_and_apply_write_the_crm_once(kb_services, client_for):
    client = client_for(kb_services)
    headers = token_for(kb_services, "rep_a")
    sgs = _get(client, kb_services).json()["suggestions"]
    visit = next(s for s in sgs if s["action_type"] == "schedule_visit")
    other = next(s for s in sgs if s["action_type"] == "escalate")

    r = client.post(f"/api/suggestions/{visit['id']}/feedback", json={"action": "accept"}, headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    assert client.post(f"/api/suggestions/{visit['id']}/feedback", json={"action": "accept"},
                       headers=token_for(kb_services, "rep_b")).status_code == 404  # fmt: skip

    first = client.post(f"/api/suggestions/{visit['id']}/apply", json={}, headers=headers)
    second = client.post(f"/api/suggestions/{visit['id']}/apply", json={}, headers=headers)
    assert first.status_code == 200, first.text
    assert (
        first.json()["suggestion"]["status"] == "applied" and first.json()["result"]["status"] == "delivered"
    )
    assert second.json()["result"]["duplicate"] is True
    tasks = [
        x
        for x in kb_services.crm.get_customer("c_a1").tasks
        if x.title == visit["proposed_change"]["fields"]["title"]
    ]
    assert len(tasks) == 1
    assert _events(kb_services, "applied") == 1

    client.post(
        f"/api/suggestions/{other['id']}/feedback",
        json={"action": "dismiss", "comment": "已安排"},
        headers=headers,
    )
    assert client.post(f"/api/suggestions/{other['id']}/apply", json={}, headers=headers).status_code == 409
    remaining = {s["id"] for s in _get(client, kb_services).json()["suggestions"]}
    assert other["id"] not in remaining and visit["id"] not in remaining


def test_edit_keeps_the_reps_wording_on_refresh(kb_services, client_for):
    client = client_for(kb_services)
    headers = token_for(kb_services, "rep_a")
    sg = _get(client, kb_services).json()["suggestions"][0]
    r = client.post(f"/api/suggestions/{sg['id']}/feedback",
                    json={"action": "edit", "edited": {"title": "周五上门拜访张总"}}, headers=headers)  # fmt: skip
    assert r.json()["status"] == "edited"
    refreshed = next(s for s in _get(client, kb_services).json()["suggestions"] if s["id"] == sg["id"])
    assert refreshed["title"] == "周五上门拜访张总"


def test_rules_are_readable_and_only_admins_may_replace_the_file(kb_services, client_for):
    client = client_for(kb_services)
    rules = client.get("/api/suggestion-rules", headers=token_for(kb_services, "rep_a")).json()["rules"]
    assert rules["rules"][0]["id"] == "visit_cadence"
    rules["rules"][0]["params"]["cadence_days"]["A"] = 90
    for user in ("rep_a", "mgr_a"):  # the whole file holds every team's rules: a manager uses /api/rules
        r = client.put("/api/suggestion-rules", json={"rules": rules}, headers=token_for(kb_services, user))
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
    bad = client.put(
        "/api/suggestion-rules", json={"yaml": "rules: ["}, headers=token_for(kb_services, "admin")
    )
    assert bad.status_code == 422
    ok = client.put("/api/suggestion-rules", json={"rules": rules}, headers=token_for(kb_services, "admin"))
    assert ok.status_code == 200
    kinds = {s["action_type"] for s in _get(client, kb_services).json()["suggestions"]}
    assert "schedule_visit" not in kinds  # 56 days < the manager's new 90-day cadence
