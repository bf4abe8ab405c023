"""Jobs: a small queue port (``submit(fn, *args)``) with an in-process thread-pool default."""

from copilot.jobs.base import JobQueue
from copilot.jobs.inprocess import InProcessJobQueue

__all__ = ["InProcessJobQueue", "JobQueue"]
