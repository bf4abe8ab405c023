"""Jobs on Redis with RQ: with ``COPILOT_REDIS_URL`` set, API processes enqueue and ``copilot worker``
processes run the jobs.

    queue = RedisJobQueue("redis://127.0.0.1:6379/0")
    queue.submit(some_module.transcribe_memo, memo_id)   # a module-level function, plain arguments

A worker imports the function by name and unpickles the arguments, so pass ids (or small frozen
dataclasses), never engines or clients; inside the job, ``worker_services()`` is the worker process's
own ``build_services(Settings())``.

Delivery is at least once. A worker heartbeats while a job runs; when it dies (killed, out of memory,
machine lost) the heartbeats stop, and after ``lease_s`` another worker's maintenance pass puts the job
back on the queue (RQ's StartedJobRegistry cleanup + ``Retry``). A job that raises is retried with
backoff too. Handlers must therefore be idempotent: a unique key, an upsert, a status check.

Callables a worker cannot import (bound methods, lambdas, closures) still run, on a local thread pool
in the submitting process, with a warning naming them; move them to module-level functions to have
them run on the workers.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from copilot.errors import AppError
from copilot.jobs.inprocess import InProcessJobQueue

if TYPE_CHECKING:
    from redis import Redis
    from rq import Queue

    from copilot.services import Services

logger = logging.getLogger(__name__)

DEFAULT_QUEUE = "copilot"
DEFAULT_LEASE_S = 60
DONE_STATES = frozenset({"finished", "failed", "canceled", "stopped"})
UNAVAILABLE = "任务队列（Redis）暂不可用，请稍后重试。"


class JobQueueUnavailable(AppError):
    """Redis could not take the job; the API answers 503 and the caller may retry."""

    def __init__(self, detail: str = UNAVAILABLE) -> None:
        super().__init__("jobs_unavailable", detail, status=503)


def job_path(fn: Callable[..., Any]) -> str | None:
    """``"package.module.function"`` when a worker can import ``fn`` by that name, else None."""
    if not inspect.isfunction(fn):  # bound methods, partials, callable objects
        return None
    module, name = fn.__module__, fn.__qualname__
    if module in (None, "__main__") or "." in name or "<" in name:
        return None
    if getattr(sys.modules.get(module), name, None) is not fn:
        return None
    return f"{module}.{name}"


def connect(url: str) -> Redis:
    from redis import Redis

    return Redis.from_url(url, health_check_interval=30, socket_connect_timeout=5)


class RedisJobQueue:
    """The JobQueue port on RQ. ``wait_idle`` waits for the jobs this instance submitted."""

    remote = True

    def __init__(
        self,
        url: str,
        *,
        queue_name: str = DEFAULT_QUEUE,
        retries: int = 3,
        retry_intervals: Sequence[int] = (10, 60, 300),
        job_timeout_s: int = 3600,
        result_ttl_s: int = 3600,
        connection: Redis | None = None,
    ) -> None:
        from rq import Queue

        self.url = url
        self.connection = connection or connect(url)
        self.queue: Queue = Queue(queue_name, connection=self.connection)
        self._retries = retries
        self._retry_intervals = list(retry_intervals)
        self._job_timeout_s = job_timeout_s
        self._result_ttl_s = result_ttl_s
        self._submitted: list[str] = []
        self._lock = threading.Lock()
        self._local: InProcessJobQueue | None = None
        self._warned: set[str] = set()

    # -- the port ---------------------------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        if job_path(fn) is None:
            self._run_locally(fn, args)
            return
        self.enqueue(fn, *args)

    def submit_many(self, fn: Callable[..., Any], arg_tuples: Sequence[tuple[Any, ...]]) -> list[str]:
        """Several jobs of one function in one Redis round trip (a webhook burst's replies): all queued
        or, on ``JobQueueUnavailable``, none. The job ids (none for jobs run in this process)."""
        from redis.exceptions import RedisError
        from rq import Queue

        if job_path(fn) is None:
            for args in arg_tuples:
                self._run_locally(fn, args)
            return []
        path = job_path(fn)
        datas = [
            Queue.prepare_data(
                path, args, timeout=self._job_timeout_s, result_ttl=self._result_ttl_s, retry=self._retry()
            )  # fmt: skip
            for args in arg_tuples
        ]
        try:
            with self.connection.pipeline() as pipe:  # MULTI/EXEC: the whole batch or nothing
                jobs = self.queue.enqueue_many(datas, pipeline=pipe)
                pipe.execute()
        except RedisError as exc:
            logger.error("could not enqueue %d jobs %s: %s", len(datas), path, type(exc).__name__)
            raise JobQueueUnavailable() from exc
        with self._lock:
            self._submitted.extend(job.id for job in jobs)
        logger.info("%d jobs queued: %s", len(jobs), path)
        return [job.id for job in jobs]

    def _retry(self) -> Any:
        from rq import Retry

        return Retry(max=self._retries, interval=self._retry_intervals) if self._retries else None

    def enqueue(self, fn: Callable[..., Any], *args: Any) -> str:
        """Put ``fn(*args)`` on the queue; the job id. ``JobQueueUnavailable`` if Redis is down."""
        from redis.exceptions import RedisError

        path = job_path(fn)
        if path is None:
            raise TypeError(f"{fn!r} is not a module-level function a worker can import")
        try:
            job = self.queue.enqueue(
                path,
                *args,
                retry=self._retry(),
                job_timeout=self._job_timeout_s,
                result_ttl=self._result_ttl_s,
            )
        except RedisError as exc:
            logger.error("could not enqueue job %s: %s", path, type(exc).__name__)
            raise JobQueueUnavailable() from exc
        with self._lock:
            self._submitted.append(job.id)
        logger.info("job %s queued: %s", job.id, path)
        return job.id

    def _run_locally(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        name = getattr(fn, "__qualname__", type(fn).__name__)
        with self._lock:
            if self._local is None:
                self._local = InProcessJobQueue()
            local = self._local
            first = name not in self._warned
            self._warned.add(name)
        if first:
            logger.warning(
                "job %s is not a module-level function; it runs in this process, not on a worker", name
            )
        local.submit(fn, *args)

    # -- waiting and status -----------------------------------------------------------------------
    def status(self, job_id: str) -> str | None:
        """RQ's status of a job (queued, started, finished, failed, scheduled …); None once expired."""
        from rq.exceptions import NoSuchJobError
        from rq.job import Job

        try:
            return Job.fetch(job_id, connection=self.connection).get_status(refresh=False)
        except NoSuchJobError:
            return None

    @property
    def pending(self) -> int:
        local = self._local.pending if self._local else 0
        return local + len(self._unfinished())

    def _unfinished(self) -> list[str]:
        with self._lock:
            ids = list(self._submitted)
        if not ids:
            return []
        with self.connection.pipeline() as pipe:
            for job_id in ids:
                pipe.hget(self.queue.job_class.key_for(job_id), "status")
            states = pipe.execute()
        done = {
            job_id for job_id, s in zip(ids, states, strict=True) if s is None or s.decode() in DONE_STATES
        }
        with self._lock:
            self._submitted = [j for j in self._submitted if j not in done]
            return list(self._submitted)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every job submitted here is finished or failed; False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._local is not None and not self._local.wait_idle(timeout):
            return False
        while self._unfinished():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def stats(self) -> dict[str, int]:
        """Queue depth and workers, for health checks and dashboards."""
        from rq import Worker

        q = self.queue
        return {
            "queued": q.count,
            "started": q.started_job_registry.count,
            "scheduled": q.scheduled_job_registry.count,
            "failed": q.failed_job_registry.count,
            "finished": q.finished_job_registry.count,
            "workers": Worker.count(queue=q),
        }

    def shutdown(self, *, wait: bool = True) -> None:
        if self._local is not None:
            self._local.shutdown(wait=wait)
        self.connection.close()


# -- the worker side ------------------------------------------------------------------------------
_worker_services: dict[str, Services] = {}


def worker_services() -> Services:
    """This worker process's composition root, built once from the environment (like the CLI's)."""
    if "s" not in _worker_services:
        from copilot.services import build_services

        _worker_services["s"] = build_services()
    return _worker_services["s"]


def _worker_class(lease_s: int):
    """RQ's SimpleWorker (jobs run in the worker process, so loaded models and pools are reused),
    plus heartbeats while a job runs so that a dead worker's job is retried after ``lease_s``."""
    from rq import SimpleWorker
    from rq.worker import WorkerStatus

    class CopilotWorker(SimpleWorker):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            beat = max(1, lease_s // 3)
            kwargs.setdefault("job_monitoring_interval", beat)
            kwargs.setdefault("maintenance_interval", max(1, lease_s))
            # RQ blocks on the queue for worker_ttl - 15 s at a time. Keep that short: a stop signal
            # delivered to one of torch's threads is only handled once the main thread's wait returns.
            kwargs.setdefault("worker_ttl", 15 + max(1, min(lease_s, 5)))
            super().__init__(*args, **kwargs)

        def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
            return max(2, lease_s)

        def execute_job(self, job, queue) -> None:
            execution = self.prepare_execution(job)
            done = threading.Event()

            def beat() -> None:
                while not done.wait(self.job_monitoring_interval):
                    try:
                        self.maintain_heartbeats(job, execution)
                    except Exception as exc:  # a missed beat only shortens the lease
                        logger.warning("heartbeat for job %s failed: %s", job.id, type(exc).__name__)

            beater = threading.Thread(target=beat, name=f"rq-heartbeat-{job.id}", daemon=True)
            beater.start()
            try:
                self.perform_job(job, queue, execution)
            finally:
                done.set()
                beater.join()
            self.set_state(WorkerStatus.IDLE)

    return CopilotWorker


def run_workers(
    url: str,
    *,
    queue_name: str = DEFAULT_QUEUE,
    processes: int = 1,
    lease_s: int = DEFAULT_LEASE_S,
    burst: bool = False,
    logging_level: str = "INFO",
) -> None:
    """Run ``processes`` workers on ``queue_name`` until SIGTERM/SIGINT (or, with ``burst``, until the
    queue is empty). Several processes run under RQ's WorkerPool, which restarts any that die."""
    from rq.worker_pool import WorkerPool

    # Scale with processes, one torch/OpenMP thread each (unless OMP_NUM_THREADS says otherwise). Measured
    # on 2 busy cores: 1 worker ran chat jobs at 8.3/s with 1 thread and 2.8/s with 2; 2 workers × 2
    # threads at 1.7/s. Set before torch is imported, so forked workers inherit it.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    # Jobs that submit follow-up jobs (a voice message → its memo) use the queue this worker serves.
    os.environ["COPILOT_REDIS_QUEUE"] = queue_name
    worker_class = _worker_class(lease_s)
    connection = connect(url)
    if processes <= 1:
        worker = worker_class([queue_name], connection=connection)
        worker.work(burst=burst, with_scheduler=True, logging_level=logging_level)
        return
    pool = WorkerPool([queue_name], connection=connection, num_workers=processes, worker_class=worker_class)
    pool.start(burst=burst, logging_level=logging_level)
