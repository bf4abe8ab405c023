"""The same application on the scale-out engines: PostgreSQL, a Chroma server (COPILOT_CHROMA_URL) and
Redis jobs run by `copilot worker` processes. Nothing differs but the configuration."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from copilot.api.app import create_app
from copilot.container import build_container
from copilot.features.crm_import import CRMImporter
from copilot.infra.jobs.redis_queue import RedisJobQueue
from copilot.settings import Settings
from tests.copilot.conftest import DATA, token_for
from tests.scaleout import jobs

pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.models,
    pytest.mark.timeout(300),
]


@pytest.fixture(scope="module")
def ingested(stack):
    """The test KB, ingested into PostgreSQL + the Chroma server by a `copilot worker` (a Redis job)."""
    queue = RedisJobQueue(stack.env["COPILOT_REDIS_URL"], queue_name=stack.queue_name)
    worker = stack.start_worker()
    job_id = queue.enqueue(jobs.ingest_kb, [str(DATA / "kb")])
    finished = queue.wait_idle(240)
    status = queue.status(job_id)
    stack.kill(worker)
    queue.shutdown()
    assert finished and status == "finished", stack.log(len(stack.workers) - 1)
    return job_id


@pytest.fixture
def scaled(ingested, stack_env, queue, embedder):
    """Container of an API process on the stack (built from the environment, as in production)."""
    services = build_container(Settings())
    services.provide("embedder", embedder)
    services.provide("jobs", queue)  # this module's own queue name, so no stray worker takes the jobs
    CRMImporter(services.engine, services.local_crm, services.users).import_file(DATA / "crm_small.json")
    yield services
    services.engine.dispose()


def test_the_stack_is_configured_by_environment_only(stack_env):
    services = build_container(Settings())
    assert services.engine.dialect.name == "postgresql"
    assert services.settings.chroma_url == stack_env.env["COPILOT_CHROMA_URL"]
    assert isinstance(services.jobs, RedisJobQueue)
    services.jobs.shutdown()
    services.engine.dispose()


def test_kb_ingested_by_a_worker_serves_search_and_chat_in_the_api_process(scaled):
    # One test, so the ingestion by a worker (the slow part) runs once whichever xdist worker runs it.
    stats = scaled.kb.stats()
    assert stats["documents"] == 2 and stats["vectors"] == stats["chunks"] > 0
    hits = scaled.kb.search("客户嫌贵怎么回？", k=3, visible_teams={"team_a"})
    assert hits and hits[0].chunk.doc_path == "话术/价格异议话术.md"
    assert all(h.chunk.doc_path != "话术/乙组竞品打法.md" for h in hits)
    # with a Chroma server the BM25 index is saved in this host's COPILOT_HOME, so a restart loads it
    assert scaled.kb.keyword_path == scaled.settings.home / "bm25" / "kb"
    assert (scaled.kb.keyword_path / "manifest.json").is_file()

    with TestClient(create_app(scaled)) as client:
        r = client.post("/api/chat", json={"message": "客户嫌贵怎么回？"}, headers=token_for(scaled, "rep_a"))
        health = client.get("/healthz").json()

    assert r.status_code == 200, r.text
    citations = r.json()["citations"]
    assert citations and citations[0]["source"] == "话术/价格异议话术.md"
    for c in citations:
        chunk, _doc = scaled.kb.get_chunk(c["ref"])
        assert c["quote"] in chunk.text
    assert health["status"] == "ok" and health["db"] == "ok"
