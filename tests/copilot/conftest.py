"""The real app, built by the same composition root as production (create_app(build_services(...)))."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from copilot.api.app import create_app
from copilot.crm_import import CRMImporter
from copilot.services import Services, build_services
from copilot.settings import Settings

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
def services(request, monkeypatch) -> Services:
    """Embedded deployment by default; COPILOT_TEST_BACKEND=postgres runs the same tests on the
    local PostgreSQL (a fresh database per test)."""
    if os.environ.get("COPILOT_TEST_BACKEND") == "postgres":
        monkeypatch.setenv("COPILOT_DATABASE_URL", request.getfixturevalue("postgres_url"))
    built = build_services(Settings())
    yield built
    if "engine" in built.__dict__:
        built.engine.dispose()


@pytest.fixture
def crm_services(services) -> Services:
    """Services with the small test CRM imported (no knowledge base loaded)."""
    CRMImporter(services.engine, services.local_crm, services.users).import_file(DATA / "crm_small.json")
    return services


@pytest.fixture
def kb_services(crm_services, embedder) -> Services:
    """…plus the small test knowledge base, ingested with the real bundled embedder."""
    crm_services.provide("embedder", embedder)
    crm_services.kb.ingest([DATA / "kb"])
    return crm_services


def token_for(services: Services, user_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {services.users.issue_token(user_id)}"}


@pytest.fixture
def client_for():
    """``client_for(services)`` → a TestClient on the real app."""
    clients: list[TestClient] = []

    def make(services: Services) -> TestClient:
        client = TestClient(create_app(services))
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()
