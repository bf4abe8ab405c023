"""Jobs on Redis with RQ: with ``COPILOT_REDIS_URL`` set, API processes enqueue and ``copilot worker``
processes run the jobs.

    queue = RedisJobQueue("redis://127.0.0.1:6379/0", entry="copilot.worker.tasks.run_task")
    queue.submit("process_memo", memo_id)   # a task by name: the worker runs entry("process_memo", memo_id)

A worker imports the entry function by name and unpickles the arguments, so pass ids (or small frozen
dataclasses), never engines or clients; inside the job, the worker uses its own container
(``copilot.worker.tasks.worker_container``). A module-level function may be submitted directly too.

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
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from copilot.errors import AppError
from copilot.infra.jobs.inprocess import InProcessJobQueue
from copilot.infra.jobs.port import DEFAULT_QUEUE, Task, TaskRunner

if TYPE_CHECKING:
    from redis import Redis
    from rq import Queue

logger = logging.getLogger(__name__)

# The function a `copilot worker` runs a named task with (imported by name there, never here).
DEFAULT_ENTRY = "copilot.worker.tasks.run_task"
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
        entry: str = DEFAULT_ENTRY,
        run_task: TaskRunner | None = None,
    ) -> None:
        self.entry = entry  # "module.function" a worker runs named tasks with: entry(name, *args)
        self._run_task = run_task  # for the jobs that cannot go to a worker (see _run_locally)
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
    def _named(self, task: Task, args: tuple[Any, ...]) -> tuple[Callable[..., Any] | str, tuple[Any, ...]]:
        """A task name → (the worker entry, (name, *args)); a callable stays as it is."""
        if callable(task):
            return task, args
        if not self.entry:
            raise TypeError(f"task {task!r} given by name, but this queue has no worker entry")
        return self.entry, (task, *args)

    def submit(self, task: Task, *args: Any) -> None:
        fn, args = self._named(task, args)
        if isinstance(fn, str):
            self.enqueue(fn, *args)
            return
        if job_path(fn) is None:
            self._run_locally(fn, args)
            return
        self.enqueue(fn, *args)

    def submit_many(self, task: Task, arg_tuples: Sequence[tuple[Any, ...]]) -> list[str]:
        """Several jobs of one task in one Redis round trip (a webhook burst's replies): all queued
        or, on ``JobQueueUnavailable``, none. The job ids (none for jobs run in this process)."""
        from redis.exceptions import RedisError
        from rq import Queue

        if not callable(task):
            arg_tuples = [(task, *args) for args in arg_tuples]
            task = self._named(task, ())[0]
        if not isinstance(task, str) and job_path(task) is None:
            for args in arg_tuples:
                self._run_locally(task, args)
            return []
        path = task if isinstance(task, str) else job_path(task)
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

    def enqueue(self, fn: Callable[..., Any] | str, *args: Any) -> str:
        """Put ``fn(*args)`` on the queue (``fn`` a function or its "module.name"); the job id.
        ``JobQueueUnavailable`` if Redis is down."""
        from redis.exceptions import RedisError

        path = fn if isinstance(fn, str) else job_path(fn)
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
