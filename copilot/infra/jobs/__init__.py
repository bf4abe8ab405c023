"""Jobs: a small queue port (``submit(task_name, *args)``) with an in-process thread-pool default and an
RQ queue on Redis for ``copilot worker`` processes (redis and rq are imported only when used).

The names below are loaded on first use, so ``copilot.infra.jobs.port`` stays as cheap as the standard
library for the CLI (``copilot --help`` does not import FastAPI through the queue's errors)."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from copilot.infra.jobs.inprocess import InProcessJobQueue
    from copilot.infra.jobs.port import JobQueue, runs_remotely, submit_many
    from copilot.infra.jobs.redis_queue import JobQueueUnavailable, RedisJobQueue

_WHERE = {
    "InProcessJobQueue": "inprocess",
    "JobQueue": "port",
    "runs_remotely": "port",
    "submit_many": "port",
    "JobQueueUnavailable": "redis_queue",
    "RedisJobQueue": "redis_queue",
}

__all__ = [
    "InProcessJobQueue",
    "JobQueue",
    "JobQueueUnavailable",
    "RedisJobQueue",
    "runs_remotely",
    "submit_many",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
