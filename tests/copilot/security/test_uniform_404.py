"""Issue #21, row 7: another team's customer, memo or suggestion answers exactly like a missing one
(404, the same body but for the request id), so existence cannot be probed; as_of is bounded (422)."""

from __future__ import annotations

import pytest

from tests.copilot.conftest import token_for


def _body(response) -> dict:
    assert response.status_code == 404, response.text
    return {k: v for k, v in response.json().items() if k != "request_id"}


def _same(client, headers, hidden: str, missing: str, method="GET", **kw) -> dict:
    """The answers for a hidden and a missing id, with each id replaced by ID: identical."""
    a = _body(client.request(method, hidden, headers=headers, **kw))
    b = _body(client.request(method, missing, headers=headers, **kw))
    hidden_id, missing_id = hidden.split("/")[3], missing.split("/")[3]
    assert {k: str(v).replace(hidden_id, "ID") for k, v in a.items()} == {
        k: str(v).replace(missing_id, "ID") for k, v in b.items()
    }
    return a


def test_customers_and_their_suggestions(crm_services, client_for):
    client, rep = client_for(crm_services), token_for(crm_services, "rep_a")
    assert _same(client, rep, "/api/customers/c_b1", "/api/customers/c_nope")["error"] == "customer_not_found"
    crm_services.provide("kb", None)
    _same(client, rep, "/api/customers/c_b1/suggestions", "/api/customers/c_nope/suggestions")
    r = client.post("/api/chat", json={"message": "怎么跟进？", "customer_id": "c_b1"}, headers=rep)
    assert r.status_code == 404 and r.json()["error"] == "customer_not_found"


def test_memos(crm_services, client_for):
    crm_services.provide("jobs", None)  # the memo is only stored, never processed, here
    memo_id = crm_services.memos.accept(crm_services.users.get("rep_b"), "c_b1", b"RIFF")
    client = client_for(crm_services)
    for user in ("rep_a", "mgr_a"):  # another team's rep, another team's manager
        headers = token_for(crm_services, user)
        assert _same(client, headers, f"/api/memos/{memo_id}", "/api/memos/memo_nope")["error"] == "not_found"
        _same(client, headers, f"/api/memos/{memo_id}/confirm", "/api/memos/memo_nope/confirm", method="POST")


def test_suggestions(crm_services, client_for, make_suggestion):
    sid = make_suggestion(
        crm_services,
        "rep_b",
        "c_b1",
        {"op": "create_task", "fields": {"customer_id": "c_b1", "title": "回访"}},
    )
    client = client_for(crm_services)
    rep, mgr = token_for(crm_services, "rep_a"), token_for(crm_services, "mgr_a")
    missing = "sg_" + "0" * 20
    _same(
        client,
        rep,
        f"/api/suggestions/{sid}/apply",
        f"/api/suggestions/{missing}/apply",
        method="POST",
        json={},
    )
    _same(client, rep, f"/api/suggestions/{sid}/feedback", f"/api/suggestions/{missing}/feedback", method="POST",
          json={"action": "dismiss"})  # fmt: skip
    _same(client, mgr, f"/api/suggestions/{sid}/annotations", f"/api/suggestions/{missing}/annotations")


@pytest.mark.parametrize("as_of", ["9999-12-31", "0001-01-01", "1999-12-31", "2100-01-01", "2026-13-01", "x"])
def test_as_of_outside_a_sane_range_is_422(crm_services, client_for, as_of):
    crm_services.provide("kb", None)
    client, rep = client_for(crm_services), token_for(crm_services, "rep_a")
    for path in ("/api/customers/c_a1/suggestions", "/api/suggestions/digest"):
        r = client.get(path, params={"as_of": as_of}, headers=rep)
        assert r.status_code == 422, (path, r.text)
        assert r.json()["error"] == "validation_error"
    ok = client.get("/api/customers/c_a1/suggestions", params={"as_of": "2026-11-20"}, headers=rep)
    assert ok.status_code == 200 and ok.json()["as_of"] == "2026-11-20"
