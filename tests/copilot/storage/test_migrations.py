"""The Alembic migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, inspect

from copilot.storage.db import all_metadata, make_engine, migrate
from tests.copilot.conftest import DATA


def _assert_schema_matches_code(engine):
    combined = MetaData()
    for md in all_metadata():
        for table in md.tables.values():
            table.to_metadata(combined)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), combined)
    assert diffs == []


def _exercise(url):
    engine = make_engine(url)
    migrate(engine)
    migrate(engine)  # idempotent: a second run is a no-op
    tables = set(inspect(engine).get_table_names())
    assert {
        "users",
        "teams",
        "api_tokens",
        "memos",
        "suggestions",
        "suggestion_events",
        "audit_log",
        "outbox",
    } <= tables
    assert {"crm_customers", "crm_opportunities", "crm_visits", "crm_purchases", "crm_tasks"} <= tables
    _assert_schema_matches_code(engine)
    return engine


def test_migrations_on_sqlite(tmp_path):
    _exercise(f"sqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
def test_migrations_and_import_on_postgres(postgres_url, monkeypatch):
    from copilot.container import build_container
    from copilot.features.crm_import import CRMImporter
    from copilot.settings import Settings

    _exercise(postgres_url)
    monkeypatch.setenv("COPILOT_DATABASE_URL", postgres_url)
    services = build_container(Settings())
    report = CRMImporter(services.engine, services.local_crm, services.users).import_file(
        DATA / "crm_small.json"
    )
    again = CRMImporter(services.engine, services.local_crm, services.users).import_file(
        DATA / "crm_small.json"
    )

    assert report.customers_added == 3 and again.customers_updated == 3
    snap = services.crm.get_customer("c_a1")
    assert snap.custom == {"credit_rating": "AA"} and snap.opportunities[0].competitors == ("智云科技",)
    token = services.users.issue_token("rep_a")
    assert services.users.authenticate(token).id == "rep_a"
    services.engine.dispose()
