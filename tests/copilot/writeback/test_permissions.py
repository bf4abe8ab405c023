"""A rep cannot apply a suggestion for another team's customer: 403 in Chinese, and nothing is written
(no outbox row, no audit entry, no CRM record, no suggestion event)."""

from __future__ import annotations

from sqlalchemy import func, select, update

from connectors.crm import local_schema
from copilot.features.suggestions.suggester import SuggestionStore
from copilot.storage import tables as t
from tests.copilot.conftest import token_for


def _count(services, table, *where):
    with services.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar()


def _nothing_written(services, sid, customer_id):
    assert _count(services, t.outbox) == 0
    assert _count(services, t.audit_log) == 0
    assert services.crm.get_customer(customer_id).tasks == ()
    ev = t.suggestion_events.c
    assert _count(services, t.suggestion_events, ev.suggestion_id == sid, ev.event != "proposed") == 0
    assert SuggestionStore(services.engine).get(sid).status == "proposed"


def _task(customer_id):
    return {"op": "create_task", "fields": {"customer_id": customer_id, "title": "发送报价单"}}


def test_rep_cannot_apply_for_another_teams_customer(crm_services, client_for, make_suggestion):
    # A suggestion rep_a holds for c_b1, a customer of team 乙组 (e.g. stored before a planner bug was fixed).
    sid = make_suggestion(crm_services, "rep_a", "c_b1", _task("c_b1"))
    client, headers = client_for(crm_services), token_for(crm_services, "rep_a")
    for body in ({}, {"fields": {"title": "改一下再确认"}}):
        r = client.post(f"/api/suggestions/{sid}/apply", json=body, headers=headers)
        assert r.status_code == 403, r.text
        assert r.json()["error"] == "forbidden" and "无权" in r.json()["detail"] and r.json()["request_id"]
    _nothing_written(crm_services, sid, "c_b1")


def test_customer_moved_to_another_team_cannot_be_written_by_the_old_owner(
    crm_services, client_for, make_suggestion
):
    sid = make_suggestion(crm_services, "rep_a", "c_a1", _task("c_a1"))
    with crm_services.engine.begin() as conn:  # the customer is reassigned to team 乙组
        conn.execute(
            update(local_schema.customers)
            .where(local_schema.customers.c.id == "c_a1")
            .values(owner_user_id="rep_b")
        )
    before = crm_services.crm.get_customer("c_a1").tasks
    r = client_for(crm_services).post(
        f"/api/suggestions/{sid}/apply", json={}, headers=token_for(crm_services, "rep_a")
    )
    assert r.status_code == 403 and "无权" in r.json()["detail"]
    assert crm_services.crm.get_customer("c_a1").tasks == before
    assert _count(crm_services, t.outbox) == 0 and _count(crm_services, t.audit_log) == 0


def test_another_reps_suggestion_is_not_found_and_not_written(crm_services, client_for, make_suggestion):
    sid = make_suggestion(crm_services, "rep_a", "c_a1", _task("c_a1"))
    client = client_for(crm_services)
    for user in ("rep_b", "rep_a2"):  # other team; same team but not the rep's own suggestion
        r = client.post(f"/api/suggestions/{sid}/apply", json={}, headers=token_for(crm_services, user))
        assert r.status_code == 404 and r.json()["detail"] == "建议不存在。"
    assert _count(crm_services, t.outbox) == 0 and _count(crm_services, t.audit_log) == 0


def test_crm_down_during_the_permission_check_answers_503_and_writes_nothing(
    crm_services, client_for, make_suggestion
):
    from connectors.crm.errors import CRMUnavailable

    sid = make_suggestion(crm_services, "rep_a", "c_a1", _task("c_a1"))

    class DownCRM:
        name = "salesforce"

        def get_customer(self, customer_id):
            raise CRMUnavailable("503 Service Unavailable", crm=self.name, status=503, retry_after=30)

    crm_services.provide("crm", DownCRM())  # permission needs the customer's owner: fail closed
    r = client_for(crm_services).post(
        f"/api/suggestions/{sid}/apply", json={}, headers=token_for(crm_services, "rep_a")
    )
    assert (
        r.status_code == 503 and r.json()["error"] == "crm_unavailable" and "暂时不可用" in r.json()["detail"]
    )
    assert r.headers["retry-after"] == "30"
    assert _count(crm_services, t.outbox) == 0 and _count(crm_services, t.audit_log) == 0
