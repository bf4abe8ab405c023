"""At-least-once delivery with idempotent handlers: a worker killed mid-job loses nothing, and the
job's effect happens once."""

from __future__ import annotations

import signal
import time
import uuid

import pytest
from sqlalchemy import create_engine, text

from tests.scaleout import jobs
from tests.scaleout.conftest import _wait

pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.timeout(180),
]


def _rows(engine, sql: str, key: str) -> list[tuple]:
    with engine.connect() as conn:
        try:
            return [tuple(r) for r in conn.execute(text(sql), {"k": key})]
        except Exception:  # the job has not created its tables yet
            conn.rollback()
            return []


def test_a_worker_killed_mid_job_has_its_job_retried_by_another_worker_once(stack_env, queue):
    engine = create_engine(stack_env.env["COPILOT_DATABASE_URL"])
    key = uuid.uuid4().hex
    first = stack_env.start_worker(lease_s=2)

    job_id = queue.enqueue(jobs.record_effect, key, 120.0)
    (attempt,) = _wait(
        lambda: _rows(engine, "SELECT pid FROM probe_attempts WHERE key = :k", key), 60, "the first attempt"
    )
    second = stack_env.start_worker(lease_s=2)
    killed_at = time.monotonic()
    stack_env.kill(first, signal.SIGKILL)  # the whole process group: no clean shutdown, no goodbye

    assert queue.wait_idle(60), stack_env.log(1)
    recovered_s = time.monotonic() - killed_at
    attempts = _rows(engine, "SELECT pid FROM probe_attempts WHERE key = :k", key)
    effects = _rows(engine, "SELECT pid FROM probe_effects WHERE key = :k", key)
    assert queue.status(job_id) == "finished"
    assert len(attempts) == 2 and attempts[0] == attempt
    assert len(effects) == 1 and effects[0] == attempts[1] != attempt  # done once, by the other worker
    assert recovered_s < 30, f"the job took {recovered_s:.1f} s to be retried"
    assert second.poll() is None
    stack_env.kill(second)
    engine.dispose()


def test_a_live_worker_keeps_a_job_longer_than_its_lease(stack_env, queue):
    engine = create_engine(stack_env.env["COPILOT_DATABASE_URL"])
    key = uuid.uuid4().hex
    workers = [stack_env.start_worker(lease_s=2), stack_env.start_worker(lease_s=2)]

    queue.enqueue(jobs.record_effect, key, 6.0)  # three leases long; heartbeats must keep it

    assert queue.wait_idle(60)
    assert len(_rows(engine, "SELECT pid FROM probe_attempts WHERE key = :k", key)) == 1
    assert len(_rows(engine, "SELECT pid FROM probe_effects WHERE key = :k", key)) == 1
    for w in workers:
        stack_env.kill(w)
    engine.dispose()


@pytest.mark.models
def test_a_worker_killed_mid_transcription_leaves_the_memo_done_once(stack_env, queue):
    """Upload through the API process; the worker dies while transcribing; another worker finishes it."""
    from fastapi.testclient import TestClient

    from copilot.api.app import create_app
    from copilot.container import build_container
    from copilot.features.crm_import import CRMImporter
    from copilot.settings import Settings
    from tests.copilot.conftest import DATA, token_for

    services = build_container(Settings())
    services.provide("jobs", queue)
    CRMImporter(services.engine, services.local_crm, services.users).import_file(DATA / "crm_small.json")
    first = stack_env.start_worker(lease_s=2)
    headers = token_for(services, "rep_a")
    with TestClient(create_app(services)) as client:
        r = client.post(
            "/api/memos",
            files={
                "file": (
                    "voice.m4a",
                    (DATA / "audio" / "speech.m4a").read_bytes(),
                    "application/octet-stream",
                )
            },
            data={"customer_id": "c_a1"},
            headers=headers,
        )
        assert r.status_code == 202, r.text
        memo_id = r.json()["memo_id"]

        def status() -> str:
            return client.get(f"/api/memos/{memo_id}", headers=headers).json()["status"]

        _wait(lambda: status() == "processing", 120, "worker 1 to start the memo", step=0.02)
        second = stack_env.start_worker(lease_s=2)
        stack_env.kill(first, signal.SIGKILL)

        assert queue.wait_idle(180), stack_env.log(len(stack_env.workers) - 1)
        memo = client.get(f"/api/memos/{memo_id}", headers=headers).json()

    assert memo["status"] == "done", memo.get("error")
    assert any(w in memo["transcript"]["text"] for w in ("报价", "拜访", "客户"))
    log = stack_env.log(len(stack_env.workers) - 1)
    assert log.count("Successfully completed copilot.worker.tasks.run_task('process_memo'") == 1, log
    assert "enqueued for retry" in log
    stack_env.kill(second)
    services.engine.dispose()
