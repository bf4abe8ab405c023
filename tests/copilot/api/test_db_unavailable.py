"""A database that cannot be reached is a 503 ``db_unavailable`` the caller can retry, never a 500 or a
hang; other database errors stay internal errors. (tests/scaleout/test_reliability.py cuts a live
PostgreSQL away from `copilot serve` and restores it.)"""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from copilot.container import build_container
from copilot.errors import db_unavailable
from copilot.settings import Settings
from tests.support.processes import free_port


def test_an_unreachable_database_answers_503_db_unavailable_in_chinese(monkeypatch, client_for):
    nobody = free_port()  # nothing listens there: the connection is refused at once
    monkeypatch.setenv("COPILOT_DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{nobody}/copilot")
    client = client_for(build_container(Settings()))

    for method, path in (("GET", "/api/customers"), ("POST", "/api/suggestions/sg_1/feedback")):
        r = client.request(method, path, headers={"Authorization": "Bearer t"}, json={"action": "dismiss"})
        assert r.status_code == 503, r.text
        assert r.json() == {
            "error": "db_unavailable",
            "detail": "数据库暂不可用，请稍后重试。",
            "request_id": r.headers["x-request-id"],
        }
        assert r.headers["retry-after"] == "5"
    health = client.get("/healthz")
    assert health.status_code == 503 and health.json()["status"] == "degraded"


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (OperationalError("SELECT 1", {}, Exception("connection refused")), True),
        (
            DBAPIError(
                "SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True
            ),
            True,
        ),
        (PoolTimeout("QueuePool limit reached"), True),
        (IntegrityError("INSERT", {}, Exception("duplicate key")), False),
        (DBAPIError("SELECT 1", {}, Exception("syntax error")), False),
        (ValueError("not a database error"), False),
    ],
)
def test_only_connection_trouble_counts_as_the_database_being_unavailable(error, unavailable):
    assert db_unavailable(error) is unavailable
