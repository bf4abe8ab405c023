"""Module-level jobs for the scale-out tests, written the way product jobs are: plain arguments (ids,
paths), the worker process's own services, and idempotent effects."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sqlalchemy import text

from copilot.worker.tasks import worker_container as worker_services


def ingest_kb(paths: list[str]) -> dict:
    """Knowledge-base ingestion; incremental, so running it twice changes nothing the second time."""
    report = worker_services().kb.ingest([Path(p) for p in paths])
    return report.to_json() if hasattr(report, "to_json") else report


def record_effect(key: str, hold_s: float) -> int:
    """Log the attempt; on the first attempt hold for ``hold_s`` (the test kills the worker meanwhile);
    then apply the effect once, keyed by ``key``. Returns the attempt number."""
    engine = worker_services().engine
    with engine.begin() as conn:
        conn.execute(
            text("CREATE TABLE IF NOT EXISTS probe_attempts (key TEXT, pid INT, at DOUBLE PRECISION)")
        )
        conn.execute(text("CREATE TABLE IF NOT EXISTS probe_effects (key TEXT PRIMARY KEY, pid INT)"))
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO probe_attempts (key, pid, at) VALUES (:k, :p, :t)"),
            {"k": key, "p": os.getpid(), "t": time.time()},
        )
        attempt = conn.execute(
            text("SELECT count(*) FROM probe_attempts WHERE key = :k"), {"k": key}
        ).scalar_one()
    if attempt == 1:
        time.sleep(hold_s)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO probe_effects (key, pid) VALUES (:k, :p) ON CONFLICT (key) DO NOTHING"),
            {"k": key, "p": os.getpid()},
        )
    return attempt


def noop(i: int) -> int:
    return i


def fail_always(i: int) -> None:
    raise RuntimeError(f"job {i} fails on purpose")
