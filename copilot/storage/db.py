"""Engine creation and schema migration (Alembic) for SQLite and PostgreSQL.

On PostgreSQL several processes (API replicas, workers) may start at once against one database:
``migrate`` serialises them with an advisory lock, so one runs the upgrade and the others then
find the schema at head. Connections are checked before use (``pool_pre_ping``) and a connection
attempt gives up after ``PG_CONNECT_TIMEOUT_S``, so a database outage surfaces as an error the API
answers with 503 ``db_unavailable`` (copilot/errors.py), and the pool reconnects once it is back.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import make_url

from connectors.crm.local_schema import metadata as crm_metadata
from copilot.storage.tables import metadata as copilot_metadata

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_LOCK_ID = 0x636F70696C6F74  # "copilot": the advisory lock key held while upgrading
PG_CONNECT_TIMEOUT_S = 10  # unless the URL sets connect_timeout


def all_metadata() -> list[MetaData]:
    """Every table set the copilot's database holds; Alembic compares against these."""
    from knowledge_base.catalog import metadata as kb_metadata

    return [copilot_metadata, crm_metadata, kb_metadata]


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # WAL lets the API read while a job writes
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL is still crash-safe (no corruption); it skips an fsync per commit,
            # which was ~2 ms of every webhook acknowledgement.
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    parsed, connect_args = make_url(url), {}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent). On PostgreSQL, concurrent callers
    take turns under a session advisory lock (released by the server if the process dies)."""
    if engine.dialect.name != "postgresql":
        command.upgrade(alembic_config(engine), "head")
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as lock:
        lock.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        try:
            command.upgrade(alembic_config(engine), "head")
        finally:
            lock.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
