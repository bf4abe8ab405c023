"""Issue #21, row 8: failed logins lock a client address out for a while; expensive routes and uploads
are rate limited per user (429 ``rate_limited`` with Retry-After; in Redis when COPILOT_REDIS_URL is
set, so every API process shares the count); uploads have a daily quota per user, and the uploads of
failed memos are deleted after the retention period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from copilot.api.app import create_app
from copilot.container import build_container
from copilot.settings import Settings
from copilot.storage import tables as t
from tests.copilot.conftest import DATA, token_for

WAV = (DATA / "audio" / "speech_8k.wav").read_bytes()


class DroppedJobs:
    def submit(self, fn, *args) -> None:
        pass


@pytest.fixture
def limited(monkeypatch, crm_services):
    """The test CRM with the abuse limits on (tests/conftest.py turns them off elsewhere)."""
    monkeypatch.setenv("COPILOT_RATE_LIMITS", "true")

    def build(**env: str):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        services = build_container(Settings())
        services.provide("kb", None)
        services.provide("jobs", DroppedJobs())  # uploads are stored, never transcribed, here
        return services

    return build


def _assert_429(response, code="rate_limited") -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"] == code and int(response.headers["retry-after"]) >= 1


def test_failed_logins_lock_the_address_out_even_for_a_right_token(limited, client_for):
    services = limited(COPILOT_RATE_LIMIT_LOGIN="5/15 minutes")
    client = client_for(services)
    for _ in range(5):
        assert client.post("/login", data={"token": "cpt_bad_guess"}).status_code == 401
    assert client.get("/login?code=lc_guess").status_code == 429  # codes count too

    right = services.users.issue_token("rep_a")
    locked = client.post("/login", data={"token": right}, follow_redirects=False)
    assert (
        locked.status_code == 429
        and "登录失败次数过多" in locked.text
        and int(locked.headers["retry-after"]) > 60
    )


def test_successful_logins_do_not_count(limited, client_for):
    services = limited(COPILOT_RATE_LIMIT_LOGIN="2/15 minutes")
    client = client_for(services)
    for _ in range(5):
        token = services.users.issue_token("rep_a")
        assert client.post("/login", data={"token": token}, follow_redirects=False).status_code == 303


def test_expensive_routes_are_limited_per_user(limited, client_for):
    services = limited(COPILOT_RATE_LIMIT_EXPENSIVE="3/minute")
    client = client_for(services)
    rep_a, rep_a2 = token_for(services, "rep_a"), token_for(services, "rep_a2")
    for _ in range(3):
        assert client.get("/api/customers/c_a1/suggestions", headers=rep_a).status_code == 200
    _assert_429(client.get("/api/customers/c_a1/suggestions", headers=rep_a))
    _assert_429(client.post("/api/chat", json={"message": "你好"}, headers=rep_a))  # the same budget
    assert client.get("/api/customers", headers=rep_a).status_code == 200  # cheap routes are not limited
    assert client.get("/api/customers/c_a2/suggestions", headers=rep_a2).status_code == 200  # others are not


def test_uploads_are_limited_and_refused_before_the_body_is_stored(limited, client_for):
    services = limited(COPILOT_RATE_LIMIT_UPLOADS="2/hour")
    client = client_for(services)
    headers = token_for(services, "rep_a")

    def upload():
        return client.post(
            "/api/memos", files={"file": ("a.wav", WAV)}, data={"customer_id": "c_a1"}, headers=headers
        )

    assert [upload().status_code for _ in range(2)] == [202, 202]
    _assert_429(upload())
    assert len(list((services.settings.home / "uploads").iterdir())) == 2


@pytest.mark.redis
def test_the_limits_are_shared_through_redis(limited, client_for):
    import redis

    url = "redis://127.0.0.1:6379/15"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    queue = (
        f"security-test-{datetime.now(UTC).timestamp()}"  # its own keys: the limit store is prefixed by it
    )
    services = limited(
        COPILOT_REDIS_URL=url, COPILOT_REDIS_QUEUE=queue, COPILOT_RATE_LIMIT_EXPENSIVE="2/minute"
    )
    one, two = client_for(services), client_for(services)  # two API processes' worth of apps
    headers = token_for(services, "rep_a")
    path = "/api/customers/c_a1/suggestions"
    assert one.get(path, headers=headers).status_code == 200
    assert two.get(path, headers=headers).status_code == 200
    _assert_429(one.get(path, headers=headers))


def test_the_daily_upload_quota(limited, client_for):
    services = limited(COPILOT_UPLOAD_QUOTA_BYTES=str(len(WAV) + 10))
    client = client_for(services)
    headers = token_for(services, "rep_a")

    def upload(user_headers):
        return client.post(
            "/api/memos", files={"file": ("a.wav", WAV)}, data={"customer_id": "c_a1"}, headers=user_headers
        )

    assert upload(headers).status_code == 202
    over = upload(headers)
    assert (
        over.status_code == 429
        and over.json()["error"] == "upload_quota_exceeded"
        and "上限" in over.json()["detail"]
    )
    assert len(list((services.settings.home / "uploads").iterdir())) == 1
    with services.engine.begin() as conn:  # a day later the quota is free again
        conn.execute(update(t.memos).values(created_at=datetime.now(UTC) - timedelta(hours=25)))
    assert upload(headers).status_code == 202


def test_failed_uploads_are_deleted_after_the_retention(limited):
    services = limited(COPILOT_FAILED_UPLOAD_RETENTION_DAYS="7")
    pipeline = services.memos
    rep = services.users.get("rep_a")
    old, recent, done = (pipeline.accept(rep, "c_a1", data) for data in (b"<html>", b"PK\x03\x04", WAV))
    with services.engine.begin() as conn:
        m = t.memos.c
        conn.execute(
            update(t.memos)
            .where(m.id.in_([old, recent]))
            .values(status="failed", error={"code": "unsupported_format", "message": "x"})
        )
        conn.execute(
            update(t.memos)
            .where(m.id.in_([old, done]))
            .values(created_at=datetime.now(UTC) - timedelta(days=8))
        )

    assert pipeline.purge_failed() == 1
    with services.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(t.memos).where(t.memos.c.id.in_([old, recent, done])))}
    assert rows[old].audio_path is None and rows[old].error["code"] == "unsupported_format"  # the row stays
    assert Path(rows[recent].audio_path).exists() and Path(rows[done].audio_path).exists()
    assert len(list((services.settings.home / "uploads").iterdir())) == 2


def test_a_down_limit_store_lets_requests_through(limited):
    from fastapi.testclient import TestClient

    services = limited(COPILOT_RATE_LIMIT_EXPENSIVE="1/minute")
    app = create_app(services)

    class Down:
        def hit(self, *args):
            raise ConnectionError("redis down")

        test = hit

    app.state.rate_limits._limiter = Down()
    client = TestClient(app)
    for _ in range(3):
        assert (
            client.get("/api/customers/c_a1/suggestions", headers=token_for(services, "rep_a")).status_code
            == 200
        )


def test_a_malformed_limit_names_the_variable():
    from copilot.api.rate_limits import RateLimits

    with pytest.raises(ValueError, match="COPILOT_RATE_LIMIT_LOGIN"):
        RateLimits.from_settings(Settings(rate_limits=True, rate_limit_login="lots"))
    assert set(RateLimits.from_settings(Settings(rate_limits=True, rate_limit_login="")).items) == {
        "expensive",
        "uploads",
    }
