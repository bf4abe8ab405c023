"""A rep's edits of the proposed fields are what reaches the CRM, and the audit keeps original and edit."""

from __future__ import annotations

from sqlalchemy import select

from copilot.features.suggestions.suggester import SuggestionStore
from copilot.features.writeback import audit
from copilot.storage import tables as t
from tests.copilot.conftest import token_for

TASK = {"op": "create_task", "fields": {"customer_id": "c_a1", "title": "发送报价单", "due": "2026-12-01"}}


def _tasks(services, title):
    return [x for x in services.crm.get_customer("c_a1").tasks if x.title == title]


def _events(services, sid, event):
    ev = t.suggestion_events.c
    with services.engine.connect() as conn:
        return [
            r.detail
            for r in conn.execute(select(ev.detail).where(ev.suggestion_id == sid, ev.event == event))
        ]


def _entry(services, sid):
    (entry,) = [e for e in audit.entries(services.engine) if e["action"] == "crm.create_task"]
    assert entry["detail"]["suggestion_id"] == sid
    return entry


def test_feedback_edit_is_written_and_audited_with_the_original(crm_services, client_for, make_suggestion):
    sid = make_suggestion(crm_services, "rep_a", "c_a1", TASK)
    client, headers = client_for(crm_services), token_for(crm_services, "rep_a")
    edited = {"proposed_change": {"fields": {"title": "周五前发送报价单（含折扣）", "due": "2026-12-05"}}}
    r = client.post(
        f"/api/suggestions/{sid}/feedback", json={"action": "edit", "edited": edited}, headers=headers
    )
    assert r.status_code == 200 and r.json()["status"] == "edited"
    assert (
        r.json()["proposed_change"]["fields"]["customer_id"] == "c_a1"
    )  # partial edit merged, customer kept

    r = client.post(f"/api/suggestions/{sid}/apply", json={}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["result"]["status"] == "delivered" and r.json()["suggestion"]["status"] == "applied"
    (task,) = _tasks(crm_services, "周五前发送报价单（含折扣）")
    assert task.due == "2026-12-05" and _tasks(crm_services, "发送报价单") == []

    entry = _entry(crm_services, sid)
    assert entry["after"]["title"] == "周五前发送报价单（含折扣）"
    assert entry["detail"]["original"]["fields"]["title"] == "发送报价单"
    assert entry["detail"]["original"]["fields"]["due"] == "2026-12-01"
    assert entry["detail"]["edited"]["fields"]["due"] == "2026-12-05" and entry["detail"]["edits"] == 1
    (detail,) = _events(crm_services, sid, "edited")
    assert detail["original"]["proposed_change"]["fields"]["title"] == "发送报价单"


def test_apply_with_fields_edits_and_confirms_in_one_call(crm_services, client_for, make_suggestion):
    sid = make_suggestion(crm_services, "rep_a", "c_a1", TASK)
    client, headers = client_for(crm_services), token_for(crm_services, "rep_a")
    body = {"fields": {"title": "下周一电话确认报价"}}

    first = client.post(f"/api/suggestions/{sid}/apply", json=body, headers=headers)
    again = client.post(
        f"/api/suggestions/{sid}/apply", json=body, headers=headers
    )  # a retry after a timeout
    assert first.status_code == 200, first.text
    assert again.status_code == 200 and again.json()["result"]["duplicate"] is True
    assert len(_tasks(crm_services, "下周一电话确认报价")) == 1 and _tasks(crm_services, "发送报价单") == []
    (detail,) = _events(crm_services, sid, "edited")  # recorded as an edit event, once
    assert detail["edited"]["proposed_change"]["fields"]["title"] == "下周一电话确认报价"
    entry = _entry(crm_services, sid)
    assert entry["detail"]["original"]["fields"]["title"] == "发送报价单"
    assert entry["detail"]["edited"]["fields"]["title"] == "下周一电话确认报价"

    late = client.post(f"/api/suggestions/{sid}/apply", json={"fields": {"title": "又改了"}}, headers=headers)
    assert late.status_code == 409 and "已执行" in late.json()["detail"]
    assert _tasks(crm_services, "又改了") == []


def test_invalid_or_forbidden_edits_write_nothing(crm_services, client_for, make_suggestion):
    stage = {
        "op": "update_stage",
        "fields": {"customer_id": "c_a1", "opportunity_id": "o_a1", "stage": "方案报价"},
    }
    sid = make_suggestion(crm_services, "rep_a", "c_a1", stage)
    client, headers = client_for(crm_services), token_for(crm_services, "rep_a")

    bad = client.post(
        f"/api/suggestions/{sid}/apply", json={"fields": {"stage": "差不多了"}}, headers=headers
    )
    won = client.post(f"/api/suggestions/{sid}/apply", json={"fields": {"stage": "赢单"}}, headers=headers)
    assert bad.status_code == 422 and won.status_code == 403 and "赢单" in won.json()["detail"]
    assert _events(crm_services, sid, "edited") == [] and audit.entries(crm_services.engine) == []
    assert crm_services.crm.get_customer("c_a1").opportunities[0].stage == "商务谈判"


def test_title_edit_carries_to_the_task_and_survives_accept_and_refresh(
    crm_services, client_for, make_suggestion
):
    sid = make_suggestion(crm_services, "rep_a", "c_a1", TASK)
    client, headers = client_for(crm_services), token_for(crm_services, "rep_a")
    client.post(f"/api/suggestions/{sid}/feedback",
                json={"action": "edit", "edited": {"title": "周五上门送报价单"}}, headers=headers)  # fmt: skip
    client.post(f"/api/suggestions/{sid}/feedback", json={"action": "accept"}, headers=headers)
    make_suggestion(crm_services, "rep_a", "c_a1", TASK)  # the planner proposes the same again (refresh)
    row = SuggestionStore(crm_services.engine).get(sid)
    assert row.title == "周五上门送报价单" and row.proposed_change["fields"]["title"] == "周五上门送报价单"

    assert client.post(f"/api/suggestions/{sid}/apply", json={}, headers=headers).status_code == 200
    assert len(_tasks(crm_services, "周五上门送报价单")) == 1
