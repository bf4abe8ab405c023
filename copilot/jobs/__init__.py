"""Jobs: a small queue port (``submit(fn, *args)``) with an in-process thread-pool default and an RQ
queue on Redis for ``copilot worker`` processes (redis and rq are imported only when used)."""

from copilot.jobs.base import JobQueue, runs_remotely, submit_many
from copilot.jobs.inprocess import InProcessJobQueue
from copilot.jobs.redis_queue import JobQueueUnavailable, RedisJobQueue, run_workers, worker_services

__all__ = [
    "InProcessJobQueue",
    "JobQueue",
    "JobQueueUnavailable",
    "RedisJobQueue",
    "run_workers",
    "runs_remotely",
    "submit_many",
    "worker_services",
]
