"""The JobQueue contract on both adapters: InProcessJobQueue (always) and RedisJobQueue with a real
RQ worker process on the local Redis (marked ``redis``; skipped with the reason when Redis is down)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from copilot.infra.jobs.inprocess import InProcessJobQueue
from copilot.infra.jobs.redis_queue import RedisJobQueue
from tests.conftest import REPO
from tests.contracts.job_queue import JobQueueContract, JobQueueEnv, by_task
from tests.contracts.job_tasks import ListSink, RedisSink, run_named

REDIS_URL = os.environ.get("COPILOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ENTRY = "tests.contracts.job_tasks.worker_entry"
RETRIES = 2
QUIT = "unsubscribing from channel"  # an RQ worker's last log line, after it unregistered


class TestInProcessJobQueue(JobQueueContract):
    @pytest.fixture
    def env(self) -> Iterator[JobQueueEnv]:
        sink = ListSink()

        def run_task(name: str, *args: object) -> None:  # as the container's: run_task(name, *args)
            run_named(sink, name, *args)

        # Two threads, fewer than the jobs most tests submit: a failing job must not cost a thread.
        queue = InProcessJobQueue(max_workers=2, run_task=run_task)
        yield JobQueueEnv(queue, sink.runs, start_workers=lambda: None, timeout=10.0)
        queue.shutdown()

    def test_a_failing_task_runs_once(self, env: JobQueueEnv):
        env.queue.submit("fail", "once")
        assert env.queue.wait_idle(env.timeout)
        assert by_task(env.runs()) == {"fail": 1}  # no retries in-process


# -- Redis ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url() -> str:
    from redis import Redis
    from redis.exceptions import RedisError

    client = Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except RedisError:
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    finally:
        client.close()
    return REDIS_URL


class BurstWorkers:
    """``run_workers(url, queue_name=…, burst=True)`` in its own process, once per ``start()``: it runs
    what is queued, then exits. Its log is kept for assertion messages."""

    def __init__(self, url: str, queue_name: str, logs: Path) -> None:
        self.url, self.queue_name, self.logs = url, queue_name, logs
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COPILOT_", "OPENAI_"))}
        env["PYTHONPATH"] = str(REPO)  # the worker imports the entry (tests.contracts.job_tasks) by name
        code = (
            "from copilot.worker.run import run_workers; "
            f"run_workers({self.url!r}, queue_name={self.queue_name!r}, burst=True, lease_s=5)"
        )
        with self.log_path(len(self.procs)).open("wb") as out:
            self.procs.append(
                subprocess.Popen(  # noqa: S603
                    [sys.executable, "-c", code], env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
                )
            )

    def log_path(self, n: int) -> Path:
        return self.logs / f"worker{n}.log"

    def log(self) -> str:
        return "\n".join(self.log_path(n).read_text(errors="replace") for n in range(len(self.procs)))

    def stop(self, timeout: float = 30.0) -> None:
        """Once each worker has quit the queue, end its process. (With rq 3.0 and redis-py 8.2 a worker
        that has quit still takes up to 60 s to exit: ``unsubscribe`` joins RQ's pubsub thread, which
        waits out its 60 s poll. By then it has unregistered itself; nothing is lost by the kill.)"""
        deadline = time.monotonic() + timeout
        for n, proc in enumerate(self.procs):
            while proc.poll() is None and time.monotonic() < deadline:
                if QUIT in self.log_path(n).read_text(errors="replace"):
                    break
                time.sleep(0.05)
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def delete_queue(connection, queue: RedisJobQueue) -> None:
    """Every key this test made: its jobs (finished, failed, still queued) and the queue's own keys."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    q = queue.queue
    ids = set(q.get_job_ids()) | set(q.finished_job_registry.get_job_ids())
    ids |= set(q.failed_job_registry.get_job_ids()) | set(q.scheduled_job_registry.get_job_ids())
    for job_id in ids:
        with contextlib.suppress(NoSuchJobError):
            Job.fetch(job_id, connection=connection).delete()
    for key in connection.scan_iter(f"*{q.name}*"):
        connection.delete(key)


@pytest.mark.redis
class TestRedisJobQueue(JobQueueContract):
    @pytest.fixture
    def queue_name(self) -> str:
        return f"copilot-contract-{uuid.uuid4().hex[:10]}"

    @pytest.fixture
    def workers(self, redis_url, queue_name, tmp_path) -> Iterator[BurstWorkers]:
        workers = BurstWorkers(redis_url, queue_name, tmp_path)
        yield workers
        workers.stop()

    @pytest.fixture
    def env(self, redis_url, queue_name, workers) -> Iterator[JobQueueEnv]:
        # Retries as in production (at once here, not after 10 s): a failing job is attempted 1 + RETRIES times.
        queue = RedisJobQueue(
            redis_url,
            queue_name=queue_name,
            entry=ENTRY,
            retries=RETRIES,
            retry_intervals=(0,),
            result_ttl_s=60,
        )
        sink = RedisSink(queue.connection, queue_name)
        yield JobQueueEnv(queue, sink.runs, start_workers=workers.start, timeout=60.0)
        workers.stop()
        delete_queue(queue.connection, queue)
        queue.shutdown()

    def test_a_named_task_is_queued_as_the_entry_called_with_the_name(self, env: JobQueueEnv):
        from rq.job import Job

        job_ids = env.queue.submit_many("record", [(7, "华星电子")])

        (job_id,) = job_ids
        job = Job.fetch(job_id, connection=env.queue.connection)
        assert job.func_name == ENTRY and job.args == ("record", 7, "华星电子")
        assert env.queue.status(job_id) == "queued"  # nothing runs it until a worker does

    def test_a_failing_task_is_retried_then_marked_failed(self, env: JobQueueEnv, workers: BurstWorkers):
        env.queue.submit("fail", "r")
        env.queue.submit("record", 1)
        workers.start()

        assert env.queue.wait_idle(env.timeout), workers.log()
        assert by_task(env.runs()) == {"fail": 1 + RETRIES, "record": 1}
        q = env.queue.queue
        assert q.failed_job_registry.count == 1 and q.finished_job_registry.count == 1
        assert "task fail('r',) fails on purpose" in workers.log()

    def test_wait_idle_covers_only_the_jobs_this_instance_submitted(
        self, env: JobQueueEnv, redis_url, queue_name, workers: BurstWorkers
    ):
        other = RedisJobQueue(redis_url, queue_name=queue_name, entry=ENTRY)
        try:
            env.queue.submit("record", "mine")

            assert other.wait_idle(0.5) is True  # the job on the shared queue is not other's to wait for
            assert env.queue.wait_idle(0.3) is False  # queued, no worker yet
            workers.start()
            assert env.queue.wait_idle(env.timeout) is True, workers.log()
            assert [run.args for run in env.runs()] == [("mine",)]
        finally:
            other.shutdown()
