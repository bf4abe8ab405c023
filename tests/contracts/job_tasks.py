"""The named tasks the JobQueue contract submits, and where their runs are recorded.

    run_named(sink, "record", 42, "华星电子")   # records Run("record", (42, "华星电子"), pid, thread)

In-process, the queue's ``run_task`` calls ``run_named(sink, name, *args)`` with a ListSink. On Redis, a
worker process runs ``worker_entry(name, *args)`` (the queue's ``entry``), which records into a Redis
list named after the job's queue, so the test process reads what another process ran.

Tasks: ``record`` (records its arguments), ``sleep`` (sleeps ``args[0]`` seconds, then records),
``fail`` (records the attempt, then raises). Any other name raises ``KeyError``, like the container.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Run:
    task: str
    args: tuple[Any, ...]
    pid: int
    thread: int


@dataclass(frozen=True)
class VisitRef:
    """A small frozen dataclass, the kind of argument use cases pass (besides ids)."""

    customer_id: str
    date: str
    tags: tuple[str, ...] = ()


class Sink(Protocol):
    def record(self, run: Run) -> None: ...

    def runs(self) -> list[Run]: ...


class ListSink:
    """Runs in this process, for the in-process queue."""

    def __init__(self) -> None:
        self._runs: list[Run] = []
        self._lock = threading.Lock()

    def record(self, run: Run) -> None:
        with self._lock:
            self._runs.append(run)

    def runs(self) -> list[Run]:
        with self._lock:
            return list(self._runs)


class RedisSink:
    """Runs in any process, as pickles in one Redis list (``RPUSH`` is atomic)."""

    def __init__(self, connection: Any, queue_name: str) -> None:
        self.connection = connection
        self.key = sink_key(queue_name)

    def record(self, run: Run) -> None:
        self.connection.rpush(self.key, pickle.dumps(run))

    def runs(self) -> list[Run]:
        return [pickle.loads(raw) for raw in self.connection.lrange(self.key, 0, -1)]


def sink_key(queue_name: str) -> str:
    return f"contract-jobs:{queue_name}:runs"


def run_named(sink: Sink, name: str, *args: Any) -> None:
    run = Run(name, args, os.getpid(), threading.get_ident())
    if name == "record":
        sink.record(run)
    elif name == "sleep":
        time.sleep(args[0])
        sink.record(run)
    elif name == "fail":
        sink.record(run)
        raise RuntimeError(f"task fail{args} fails on purpose")
    else:
        raise KeyError(f"unknown task {name!r}")


def worker_entry(name: str, *args: Any) -> None:
    """The Redis queue's ``entry``: run by an RQ worker as ``entry(name, *args)``."""
    from rq import get_current_job

    job = get_current_job()
    if job is None:
        raise RuntimeError("worker_entry runs inside an RQ job")
    run_named(RedisSink(job.connection, job.origin), name, *args)
