"""The default job queue: a small thread pool inside the server process."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from copilot.infra.jobs.port import JOB_NICENESS, Task, TaskRunner, lower_priority, pending_acks

logger = logging.getLogger(__name__)


class InProcessJobQueue:
    """Runs jobs on ``max_workers`` threads. ``wait_idle`` lets tests and shutdown wait for the backlog."""

    remote = False

    def __init__(self, max_workers: int = 4, *, run_task: TaskRunner | None = None) -> None:
        self._run_task = run_task
        # On Linux a thread has its own nice value: job threads yield the cores to request handling.
        self._pool = ThreadPoolExecutor(
            max_workers=max_workers,
            thread_name_prefix="copilot-job",
            initializer=functools.partial(lower_priority, JOB_NICENESS, thread_only=True),
        )
        self._pending = 0
        self._idle = threading.Condition()

    def submit(self, task: Task, *args: Any) -> None:
        fn = self.resolve(task)
        with self._idle:
            self._pending += 1
        try:
            self._pool.submit(self._run, fn, args)
        except RuntimeError:  # the pool was shut down
            self._done()
            raise

    def resolve(self, task: Task) -> Callable[..., Any]:
        """A task name becomes a call of the container's task of that name."""
        if callable(task):
            return task
        if self._run_task is None:
            raise TypeError(f"task {task!r} given by name, but this queue has no task runner")
        return functools.partial(self._run_task, task)

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        pending_acks.wait_until_quiet()  # a burst of callbacks is acknowledged before answers are computed
        try:
            fn(*args)
        except Exception:
            name = fn.args[0] if isinstance(fn, functools.partial) and fn.args else fn
            logger.exception("job %s failed", getattr(name, "__qualname__", name))
        finally:
            self._done()

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            if self._pending == 0:
                self._idle.notify_all()

    @property
    def pending(self) -> int:
        return self._pending

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no job is queued or running; False if ``timeout`` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    def shutdown(self, *, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
