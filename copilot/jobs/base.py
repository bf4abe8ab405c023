"""The job-queue port: long work (channel replies, transcription, ingestion, CRM writes) runs as jobs.

    jobs.submit(channels.handle, message)

``submit`` returns at once. Prefer callables and arguments a worker process can rebuild (module-level
functions, ids, frozen dataclasses), so the same calls can move to the Redis queue (``copilot worker``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class JobQueue(Protocol):
    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` later, off the caller's thread; failures are logged, never raised here."""
        ...
