"""Issue #21, row 3: the web session is server-side and dies with the credential behind it: logout,
revoking the user (`copilot users revoke`), revoking the one token, the idle and absolute timeouts.
The cookie is HttpOnly, SameSite=Lax, Secure behind HTTPS, and never stored in the clear."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from typer.testing import CliRunner

from copilot.cli.main import app as cli
from copilot.identity.sessions import COOKIE_NAME
from copilot.storage.tables import web_sessions
from tests.support.web_login import csrf_of, web_login


def _replay(client, cookie: str) -> int:
    """The API status for a request carrying only ``cookie`` (as an attacker replaying it would)."""
    client.cookies.clear()
    return client.get("/api/customers", cookies={COOKIE_NAME: cookie}).status_code


def test_logout_ends_the_session_on_the_server_and_a_replayed_cookie_is_401(crm_services, client_for):
    client = client_for(crm_services)
    csrf = web_login(client, crm_services, "rep_a")
    cookie = client.cookies[COOKIE_NAME]
    assert client.get("/api/customers").status_code == 200

    out = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)

    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert _replay(client, cookie) == 401


def test_revoking_the_user_ends_their_sessions(crm_services, client_for):
    client = client_for(crm_services)
    web_login(client, crm_services, "rep_a")
    cookie = client.cookies[COOKIE_NAME]

    result = CliRunner().invoke(cli, ["users", "revoke", "rep_a", "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sessions_ended"] == 1
    assert _replay(client, cookie) == 401


def test_revoking_the_token_that_opened_the_session_ends_it(crm_services, client_for):
    client = client_for(crm_services)
    token = crm_services.users.issue_token("rep_a")
    other = crm_services.users.issue_token("rep_a")
    assert client.post("/login", data={"token": token}, follow_redirects=False).status_code == 303
    cookie = client.cookies[COOKIE_NAME]
    assert _replay(client, cookie) == 200

    crm_services.users.revoke_tokens("rep_a", token.split("_")[1])  # that token only, no session call

    assert _replay(client, cookie) == 401
    assert crm_services.users.authenticate(other) is not None  # the rep's other tokens still work


def test_an_idle_or_too_old_session_is_over(crm_services, client_for):
    client = client_for(crm_services)
    web_login(client, crm_services, "rep_a")
    cookie = client.cookies[COOKIE_NAME]
    store = crm_services.web_sessions
    now = datetime.now(UTC)

    store._clock = lambda: now + store.idle - timedelta(minutes=1)
    assert store.resolve(cookie) is not None  # used again in time: it lives on
    store._clock = lambda: now + store.idle * 2 - timedelta(minutes=3)
    assert store.resolve(cookie) is not None
    store._clock = lambda: now + store.idle * 3 + timedelta(minutes=1)  # idle too long
    assert store.resolve(cookie) is None

    store._clock = lambda: now
    web_login(client, crm_services, "rep_a")
    fresh = client.cookies[COOKIE_NAME]
    step = store.idle - timedelta(minutes=5)
    moment = now
    while moment - now < store.absolute:  # kept busy, but past the absolute lifetime it ends anyway
        store._clock = lambda m=moment: m
        assert store.resolve(fresh) is not None
        moment += step
    store._clock = lambda: now + store.absolute + timedelta(minutes=1)
    assert store.resolve(fresh) is None


def test_the_cookie_is_http_only_same_site_and_secure_behind_https(crm_services, client_for, monkeypatch):
    client = client_for(crm_services)
    web_login(client, crm_services, "rep_a")
    jar = {c.name: c for c in client.cookies.jar}
    assert jar[COOKIE_NAME].has_nonstandard_attr("HttpOnly") and not jar[COOKIE_NAME].secure

    monkeypatch.setenv("COPILOT_HTTPS", "true")
    from copilot.container import build_container
    from copilot.settings import Settings

    https = build_container(Settings())
    code = https.login_codes.mint("rep_a")
    response = client_for(https).get(f"/login?code={code}", follow_redirects=False)
    set_cookie = response.headers["set-cookie"].lower()
    assert "secure" in set_cookie and "httponly" in set_cookie and "samesite=lax" in set_cookie
    assert response.headers["strict-transport-security"].startswith("max-age=")


def test_sessions_are_stored_hashed_and_each_login_gets_a_new_one(crm_services, client_for):
    client = client_for(crm_services)
    first_csrf = web_login(client, crm_services, "rep_a")
    first = client.cookies[COOKIE_NAME]
    second_csrf = web_login(client, crm_services, "rep_a")
    second = client.cookies[COOKIE_NAME]

    assert first != second and first_csrf != second_csrf
    assert _replay(client, first) == 401  # a new login in the same browser ends the old session
    with crm_services.engine.connect() as conn:
        stored = [tuple(r) for r in conn.execute(select(web_sessions.c.id, web_sessions.c.user_id))]
    assert len(stored) == 2 and all(first not in r and second not in r for r in stored)


def test_a_garbage_or_foreign_cookie_is_just_not_a_session(crm_services, client_for):
    client = client_for(crm_services)
    for value in ("", "x", "cps_" + "A" * 43, "cps_" + "A" * 500):
        assert _replay(client, value) == 401
    assert csrf_of('<meta name="csrf-token" content="abc">') == "abc"
