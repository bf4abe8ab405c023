"""Jobs: a small queue port (``submit(task_name, *args)``) with an in-process thread-pool default and an
RQ queue on Redis for ``copilot worker`` processes (redis and rq are imported only when used)."""

from copilot.infra.jobs.inprocess import InProcessJobQueue
from copilot.infra.jobs.port import JobQueue, runs_remotely, submit_many
from copilot.infra.jobs.redis_queue import JobQueueUnavailable, RedisJobQueue

__all__ = [
    "InProcessJobQueue",
    "JobQueue",
    "JobQueueUnavailable",
    "RedisJobQueue",
    "runs_remotely",
    "submit_many",
]
