"""The Redis job queue (RQ) and `copilot worker`: jobs submitted in one process run in another."""

from __future__ import annotations

import threading

import pytest
from typer.testing import CliRunner

from copilot.cli.main import app
from copilot.container import build_container
from copilot.infra.jobs.redis_queue import JobQueueUnavailable, RedisJobQueue, job_path
from copilot.settings import Settings
from tests.scaleout import jobs

pytestmark = pytest.mark.redis


def test_only_module_level_functions_go_to_workers():
    assert job_path(jobs.noop) == "tests.scaleout.jobs.noop"
    assert job_path(lambda: None) is None
    assert job_path(threading.Event().set) is None

    def nested() -> None: ...

    assert job_path(nested) is None


def test_services_choose_the_redis_queue_when_redis_url_is_set(monkeypatch, redis_url):
    assert type(build_container(Settings()).jobs).__name__ == "InProcessJobQueue"
    monkeypatch.setenv("COPILOT_REDIS_URL", redis_url)
    services = build_container(Settings())
    assert isinstance(services.jobs, RedisJobQueue)
    services.jobs.shutdown()


def test_jobs_submitted_here_run_on_a_worker_process(stack_env, queue):
    worker = stack_env.start_worker(processes=2)

    ids = [queue.enqueue(jobs.noop, i) for i in range(20)]

    assert queue.wait_idle(60), stack_env.log(0)
    assert {queue.status(i) for i in ids} == {"finished"}
    from rq.job import Job

    results = sorted(Job.fetch(i, connection=queue.connection).return_value() for i in ids)
    assert results == list(range(20))
    assert worker.poll() is None
    stack_env.kill(worker)


def test_submit_many_queues_a_batch_in_one_go_and_workers_run_every_job(stack_env, queue):
    worker = stack_env.start_worker()

    ids = queue.submit_many(jobs.noop, [(i,) for i in range(12)])

    assert queue.wait_idle(60), stack_env.log(len(stack_env.workers) - 1)
    from rq.job import Job

    assert len(set(ids)) == 12 and {queue.status(i) for i in ids} == {"finished"}
    assert sorted(Job.fetch(i, connection=queue.connection).return_value() for i in ids) == list(range(12))
    stack_env.kill(worker)


def test_submit_many_queues_nothing_when_redis_is_down():
    q = RedisJobQueue("redis://127.0.0.1:1/0")
    with pytest.raises(JobQueueUnavailable):
        q.submit_many(jobs.noop, [(1,), (2,)])


def test_a_failing_job_is_retried_then_marked_failed(stack_env, monkeypatch):
    from copilot.infra.jobs.redis_queue import RedisJobQueue

    q = RedisJobQueue(
        stack_env.env["COPILOT_REDIS_URL"], queue_name=stack_env.queue_name, retries=2, retry_intervals=(0,)
    )
    worker = stack_env.start_worker()
    job_id = q.enqueue(jobs.fail_always, 7)

    assert q.wait_idle(60), stack_env.log(len(stack_env.workers) - 1)
    assert q.status(job_id) == "failed"
    log = stack_env.log(len(stack_env.workers) - 1)
    assert log.count("job 7 fails on purpose") >= 3  # the first run and two retries
    stack_env.kill(worker)
    q.shutdown()


def test_callables_a_worker_cannot_import_run_in_this_process(redis_url):
    q = RedisJobQueue(redis_url, queue_name="copilot-test-local")
    done = threading.Event()

    q.submit(done.set)

    assert q.wait_idle(10) and done.is_set()
    assert q.queue.count == 0
    q.shutdown()


def test_submit_raises_a_503_error_when_redis_is_down():
    q = RedisJobQueue("redis://127.0.0.1:1/0")
    with pytest.raises(JobQueueUnavailable) as err:
        q.submit(jobs.noop, 1)
    assert err.value.status == 503 and "Redis" in err.value.detail


def test_worker_command_explains_in_chinese_when_redis_is_not_configured():
    result = CliRunner().invoke(app, ["worker"])
    assert result.exit_code == 1
    assert "COPILOT_REDIS_URL" in result.output and "未设置" in result.output


def test_worker_status_reports_the_queue_as_json(monkeypatch, redis_url):
    import json

    monkeypatch.setenv("COPILOT_REDIS_URL", redis_url)
    result = CliRunner().invoke(app, ["worker", "--status", "--queue", "copilot-test-status", "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["queue"] == "copilot-test-status" and stats["queued"] == 0
