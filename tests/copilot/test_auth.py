"""Authentication and scoping on every route: the user comes from the credential, never the body."""

from tests.copilot.conftest import token_for
from tests.support.web_login import csrf_of


def test_api_without_credentials_is_401_with_chinese_error(crm_services, client_for):
    client = client_for(crm_services)

    for method, path in [("get", "/api/customers"), ("get", "/api/customers/c_a1"), ("post", "/api/chat")]:
        r = getattr(client, method)(path, **({"json": {"message": "你好"}} if method == "post" else {}))
        assert r.status_code == 401, path
        body = r.json()
        assert body["error"] == "unauthenticated"
        assert "令牌" in body["detail"]
        assert body["request_id"]


def test_wrong_or_revoked_token_is_rejected(crm_services, client_for):
    client = client_for(crm_services)
    token = crm_services.users.issue_token("rep_a")

    assert client.get("/api/customers", headers={"Authorization": "Bearer cpt_x_y"}).status_code == 401
    assert client.get("/api/customers", headers={"Authorization": f"Basic {token}"}).status_code == 401
    assert client.get("/api/customers", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    crm_services.users.revoke_tokens("rep_a")
    assert client.get("/api/customers", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_tokens_are_stored_hashed(crm_services):
    from sqlalchemy import select

    from copilot.storage.tables import api_tokens

    token = crm_services.users.issue_token("rep_a")
    with crm_services.engine.connect() as conn:
        stored = [r.token_hash for r in conn.execute(select(api_tokens))]
    secret = token.split("_", 2)[2]
    assert stored and all(secret not in h for h in stored)


def test_rep_sees_only_own_customers_and_another_teams_is_404_like_a_missing_one(crm_services, client_for):
    client = client_for(crm_services)
    headers = token_for(crm_services, "rep_a")

    listed = client.get("/api/customers", headers=headers).json()["customers"]
    assert [c["id"] for c in listed] == ["c_a1"]

    r = client.get("/api/customers/c_b1", headers=headers)
    assert r.status_code == 404
    assert r.json()["error"] == "customer_not_found"
    # a team-mate's customer is not the rep's either
    assert client.get("/api/customers/c_a2", headers=headers).status_code == 404
    assert client.get("/api/customers/nope", headers=headers).status_code == 404


def test_manager_sees_the_team_and_admin_sees_all(crm_services, client_for):
    client = client_for(crm_services)

    mgr = client.get("/api/customers", headers=token_for(crm_services, "mgr_a")).json()["customers"]
    assert {c["id"] for c in mgr} == {"c_a1", "c_a2"}
    assert client.get("/api/customers/c_b1", headers=token_for(crm_services, "mgr_a")).status_code == 404

    admin = client.get("/api/customers", headers=token_for(crm_services, "admin")).json()["customers"]
    assert {c["id"] for c in admin} == {"c_a1", "c_a2", "c_b1"}


def test_chat_about_another_teams_customer_is_404_even_if_body_claims_a_user(crm_services, client_for):
    client = client_for(crm_services)
    r = client.post(
        "/api/chat",
        json={"message": "下一步怎么跟？", "customer_id": "c_b1", "user_id": "rep_b"},
        headers=token_for(crm_services, "rep_a"),
    )
    assert r.status_code == 404 and r.json()["error"] == "customer_not_found"


def test_customer_snapshot_has_the_import_shapes_and_keeps_custom_fields(crm_services, client_for):
    client = client_for(crm_services)
    snap = client.get("/api/customers/c_a1", headers=token_for(crm_services, "rep_a")).json()

    assert snap["name"] == "华星电子" and snap["tier"] == "A"
    assert snap["credit_rating"] == "AA"
    assert snap["contacts"][0] == {"name": "张总", "role": "总经理", "is_decision_maker": True}
    opp = snap["opportunities"][0]
    assert opp["stage"] == "商务谈判" and opp["competitors"] == ["智云科技"]
    assert [h["stage"] for h in opp["stage_history"]] == ["需求确认", "商务谈判"]
    assert snap["purchases"] == [
        {"month": "2026-08", "amount": 120000.0},
        {"month": "2026-09", "amount": 98000.0},
    ]
    assert snap["tasks"][0]["status"] == "open"


def test_web_login_sets_a_session_and_bad_token_shows_chinese_error(crm_services, client_for):
    client = client_for(crm_services)
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"

    bad = client.post("/login", data={"token": "cpt_bad_bad"})
    assert bad.status_code == 401 and "令牌无效" in bad.text

    token = crm_services.users.issue_token("rep_a")
    ok = client.post("/login", data={"token": token}, follow_redirects=False)
    assert ok.status_code == 303
    page = client.get("/")
    assert page.status_code == 200 and "李雷" in page.text and "华星电子" in page.text
    assert "南山零售" not in page.text  # another team's customer is not offered
    assert client.get("/api/customers").status_code == 200  # the cookie authenticates the API too

    csrf = csrf_of(page.text)
    client.post("/logout", data={"csrf_token": csrf})
    assert client.get("/api/customers").status_code == 401
