"""The default job queue: a small thread pool inside the server process."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from copilot.jobs.base import JOB_NICENESS, lower_priority, pending_acks

logger = logging.getLogger(__name__)


class InProcessJobQueue:
    """Runs jobs on ``max_workers`` threads. ``wait_idle`` lets tests and shutdown wait for the backlog."""

    remote = False

    def __init__(self, max_workers: int = 4) -> None:
        # On Linux a thread has its own nice value: job threads yield the cores to request handling.
        self._pool = ThreadPoolExecutor(
            max_workers=max_workers,
            thread_name_prefix="copilot-job",
            initializer=functools.partial(lower_priority, JOB_NICENESS, thread_only=True),
        )
        self._pending = 0
        self._idle = threading.Condition()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        with self._idle:
            self._pending += 1
        try:
            self._pool.submit(self._run, fn, args)
        except RuntimeError:  # the pool was shut down
            self._done()
            raise

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        pending_acks.wait_until_quiet()  # a burst of callbacks is acknowledged before answers are computed
        try:
            fn(*args)
        except Exception:
            name = getattr(fn, "__qualname__", type(fn).__name__)
            logger.exception("job %s failed", name)
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
