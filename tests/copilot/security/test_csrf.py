"""Issue #21, row 2: a cookie-authenticated state change needs a same-site origin and the session's
CSRF token; the pages send it; bearer-token calls are not affected. Nothing is written when refused."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from copilot.storage.tables import audit_log, memos, outbox
from tests.copilot.conftest import token_for
from tests.support.web_login import web_login

TASK = {"op": "create_task", "fields": {"customer_id": "c_a1", "title": "发送报价单"}}
EVIL = "http://evil.example"


def _count(services, table) -> int:
    with services.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def _refused(response) -> None:
    assert response.status_code == 403, response.text
    body = response.json()
    assert (
        body["error"] == "csrf_failed"
        and body["request_id"]
        and ("跨站" in body["detail"] or "CSRF" in body["detail"])
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": EVIL, "Content-Type": "application/x-www-form-urlencoded"},  # the issue's probe
        {"Sec-Fetch-Site": "cross-site", "Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "application/json"},  # same origin, but no CSRF token
        {"Content-Type": "application/json", "X-CSRF-Token": "guessed"},
    ],
    ids=["evil origin", "cross-site fetch", "no token", "wrong token"],
)
def test_a_forged_apply_with_the_cookie_writes_nothing(crm_services, client_for, make_suggestion, headers):
    sid = make_suggestion(crm_services, "rep_a", "c_a1", TASK)
    client = client_for(crm_services)
    web_login(client, crm_services, "rep_a")
    tasks = crm_services.crm.get_customer("c_a1").tasks

    _refused(client.post(f"/api/suggestions/{sid}/apply", content=b"", headers=headers))

    assert _count(crm_services, outbox) == 0 and _count(crm_services, audit_log) == 0
    assert crm_services.crm.get_customer("c_a1").tasks == tasks


def test_forged_memo_confirm_and_multipart_upload_are_refused(crm_services, client_for):
    client = client_for(crm_services)
    web_login(client, crm_services, "rep_a")
    before = _count(crm_services, memos)

    _refused(client.post("/api/memos/memo_x/confirm", headers={"Origin": EVIL}))
    upload = client.post("/api/memos", files={"file": ("a.wav", b"RIFF0000WAVE" + bytes(100))},
                         data={"customer_id": "c_a1"}, headers={"Origin": EVIL})  # fmt: skip
    _refused(upload)
    _refused(
        client.post("/api/memos", files={"file": ("a.wav", b"RIFF0000WAVE")}, data={"customer_id": "c_a1"})
    )

    assert _count(crm_services, memos) == before and not (crm_services.settings.home / "uploads").exists()


def test_the_page_token_from_the_same_origin_is_accepted(crm_services, client_for, make_suggestion):
    sid = make_suggestion(crm_services, "rep_a", "c_a1", TASK)
    client = client_for(crm_services)
    csrf = web_login(client, crm_services, "rep_a")
    same_origin = {"X-CSRF-Token": csrf, "Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}

    r = client.post(f"/api/suggestions/{sid}/apply", json={}, headers=same_origin)

    assert r.status_code == 200, r.text
    assert r.json()["result"]["status"] == "delivered" and _count(crm_services, outbox) == 1
    assert client.get("/api/customers").status_code == 200  # reading needs no token


def test_bearer_calls_are_not_affected(crm_services, client_for, make_suggestion):
    sid = make_suggestion(crm_services, "rep_a", "c_a1", TASK)
    client = client_for(crm_services)

    r = client.post(
        f"/api/suggestions/{sid}/apply", json={}, headers={**token_for(crm_services, "rep_a"), "Origin": EVIL}
    )

    assert r.status_code == 200, r.text


def test_a_forged_logout_does_not_log_out_and_a_cross_site_login_form_is_refused(crm_services, client_for):
    client = client_for(crm_services)
    web_login(client, crm_services, "rep_a")

    forged = client.post("/logout", follow_redirects=False)  # no csrf_token field
    assert forged.status_code == 303 and forged.headers["location"] == "/"
    assert client.get("/api/customers").status_code == 200
    _refused(client.post("/logout", headers={"Origin": EVIL}))
    assert client.get("/api/customers").status_code == 200

    token = crm_services.users.issue_token("rep_b")
    other = client_for(crm_services)
    _refused(other.post("/login", data={"token": token}, headers={"Origin": EVIL}))  # login CSRF
    assert other.get("/api/customers").status_code == 401


def test_the_pages_send_the_token(crm_services, client_for):
    from pathlib import Path

    static = Path(__file__).resolve().parents[3] / "copilot" / "web" / "static"
    for name in ("chat.js", "dashboard.js"):
        source = (static / name).read_text(encoding="utf-8")
        assert "X-CSRF-Token" in source and 'meta[name="csrf-token"]' in source, name
    client = client_for(crm_services)
    csrf = web_login(client, crm_services, "rep_a")
    page = client.get("/").text
    assert f'name="csrf_token" value="{csrf}"' in page  # the logout form
