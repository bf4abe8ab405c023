"""The job-queue port: long work (channel replies, transcription, ingestion, CRM writes) runs as jobs.

    jobs.submit("process_memo", memo_id)     # a task by name (the container's ``tasks``), plain arguments

``submit`` returns at once. Use cases submit tasks by name with arguments a worker process can rebuild
(ids, frozen dataclasses), so the same call runs in-process or on the Redis queue (``copilot worker``).
A plain callable is still accepted (it runs where the queue can run it; tests use this).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

Task = str | Callable[..., Any]  # a task name, or a callable
TaskRunner = Callable[..., Any]  # run_task(name, *args): the container's tasks by name


class JobQueue(Protocol):
    remote: bool  # True: jobs run in other processes (``copilot worker``)

    def submit(self, task: Task, *args: Any) -> None:
        """Run ``task(*args)`` later, off the caller's thread; failures are logged, never raised here."""
        ...

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until the jobs submitted here have finished; False if ``timeout`` passed first."""
        ...


def submit_many(queue: JobQueue, fn: Task, arg_tuples: list[tuple[Any, ...]]) -> None:
    """``fn(*args)`` for each of ``arg_tuples``: in one round trip where the queue can (Redis pipeline)."""
    batch = getattr(queue, "submit_many", None)
    if batch is not None:
        batch(fn, arg_tuples)
        return
    for args in arg_tuples:
        queue.submit(fn, *args)


def runs_remotely(queue: object) -> bool:
    """Whether ``queue`` hands jobs to other processes (the worker rebuilds its own container)."""
    return bool(getattr(queue, "remote", False))


# Jobs yield the CPU to request handling: a webhook must be acknowledged within a second (WeCom retries
# after 5 s) however many answers are being computed. Raising a job's nice value costs nothing when the
# machine is idle.
JOB_NICENESS = 10
DEFAULT_QUEUE = "copilot"  # the Redis queue (COPILOT_REDIS_QUEUE)
DEFAULT_LEASE_S = 60  # a job whose worker stopped beating for this long is retried elsewhere


def lower_priority(increment: int = JOB_NICENESS, *, thread_only: bool = False) -> None:
    """Lower this process's CPU priority (or, on Linux, only the calling thread's) by ``increment``."""
    with contextlib.suppress(OSError, AttributeError):  # not permitted, or no such call on this system
        if thread_only:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + increment)
        else:
            os.nice(increment)


class PendingAcks:
    """Webhook acknowledgements this process owes. Nice values do not help inside one process (the GIL
    is shared), so in-process jobs wait, before they start, until no acknowledgement has been owed for
    ``QUIET_S`` (a burst arrives over tens of milliseconds) — at most ``MAX_WAIT_S``, so that a steady
    stream of callbacks cannot starve the answers; then they still start in a gap between two
    acknowledgements, not in the middle of one (at 200 callbacks/s that took the ack p99 from ~250 ms to
    ~6 ms, ``python -m benches webhooks``, 1 API)."""

    QUIET_S = 0.02
    MAX_WAIT_S = 1.0

    def __init__(self) -> None:
        self._owed = 0
        self._last = 0.0  # monotonic time the last acknowledgement was sent
        self._lock = threading.Lock()
        self._none = threading.Event()
        self._none.set()

    @contextlib.contextmanager
    def owed(self) -> Iterator[None]:
        with self._lock:
            self._owed += 1
            self._none.clear()
        try:
            yield
        finally:
            with self._lock:
                self._owed -= 1
                self._last = time.monotonic()
                if self._owed == 0:
                    self._none.set()

    def wait_until_quiet(self, quiet: float | None = None, timeout: float | None = None) -> bool:
        """True once no acknowledgement is owed and none was sent for ``quiet`` seconds. After ``timeout``
        without such a calm: False, at the next moment no acknowledgement is owed (waiting at most
        ``timeout`` again)."""
        quiet = self.QUIET_S if quiet is None else quiet
        timeout = self.MAX_WAIT_S if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self._none.wait(left):
                self._none.wait(timeout)
                return False
            calm = quiet - (time.monotonic() - self._last)
            if calm <= 0 and self._none.is_set():
                return True
            time.sleep(max(0.0, min(calm, deadline - time.monotonic())))


pending_acks = PendingAcks()  # one per process: every app and job queue in it shares the cores
