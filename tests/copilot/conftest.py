"""The real app, built by the same composition root as production (create_app(build_container(...)))."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from copilot.api.app import create_app
from copilot.container import Container, build_container
from copilot.features.crm_import import CRMImporter
from copilot.settings import Settings
from tests.conftest import POSTGRES_URL
from tests.support.pg_databases import RecycledDatabase, Unreachable

DATA = Path(__file__).resolve().parents[1] / "data"
# Which relational database the suite runs on: "sqlite" (the embedded default) or "postgres" (the
# scale-out deployment: `COPILOT_TEST_BACKEND=postgres pytest tests/copilot`, the second pass of
# `make test`). Read once here: tests/conftest.py scrubs COPILOT_* from every test's environment.
BACKEND = os.environ.get("COPILOT_TEST_BACKEND", "sqlite")
if BACKEND not in ("sqlite", "postgres"):
    raise pytest.UsageError(f"COPILOT_TEST_BACKEND={BACKEND!r}: use sqlite or postgres")


def pytest_sessionstart(session: pytest.Session) -> None:
    """`COPILOT_TEST_BACKEND=postgres pytest tests/copilot` without a PostgreSQL: one line, not a skip per test."""
    if BACKEND == "postgres" and not session.config.option.collectonly:
        from sqlalchemy import create_engine
        from sqlalchemy.exc import OperationalError

        engine = create_engine(POSTGRES_URL)
        try:
            engine.connect().close()
        except OperationalError:
            pytest.exit(f"PostgreSQL not reachable at {POSTGRES_URL}: the PostgreSQL pass is skipped", 0)
        finally:
            engine.dispose()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[RecycledDatabase]:
    """This test process's PostgreSQL database, emptied for each test (tests/support/pg_databases.py)."""
    try:
        database = RecycledDatabase(POSTGRES_URL)
    except Unreachable:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}")
    yield database
    database.close()


@pytest.fixture(autouse=True)
def backend_database(request, clean_env, monkeypatch) -> str | None:
    """With COPILOT_TEST_BACKEND=postgres every test here (the API, the CLI, the jobs) sees
    COPILOT_DATABASE_URL of an empty PostgreSQL database at the newest revision; None on SQLite."""
    if BACKEND != "postgres":
        return None
    url = request.getfixturevalue("pg_database").fresh()
    monkeypatch.setenv("COPILOT_DATABASE_URL", url)
    return url


@pytest.fixture
def services(backend_database) -> Iterator[Container]:
    """The embedded deployment by default; PostgreSQL with COPILOT_TEST_BACKEND=postgres."""
    built = build_container(Settings())
    yield built
    if "engine" in built.__dict__:
        built.engine.dispose()


@pytest.fixture
def crm_services(services) -> Container:
    """Container with the small test CRM imported (no knowledge base loaded)."""
    CRMImporter(services.engine, services.local_crm, services.users).import_file(DATA / "crm_small.json")
    return services


@pytest.fixture
def kb_services(crm_services, embedder) -> Container:
    """…plus the small test knowledge base, ingested with the real bundled embedder."""
    crm_services.provide("embedder", embedder)
    crm_services.kb.ingest([DATA / "kb"])
    return crm_services


def token_for(services: Container, user_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {services.users.issue_token(user_id)}"}


@pytest.fixture
def client_for():
    """``client_for(services)`` → a TestClient on the real app."""
    clients: list[TestClient] = []

    def make(services: Container) -> TestClient:
        client = TestClient(create_app(services))
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()
