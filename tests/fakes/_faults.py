"""Fault injection shared by the fake CRMs: fail, rate-limit or hang the next N requests."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

MAX_HANG_S = 8.0  # a hang is bounded so a broken test cannot wedge the suite


@dataclass
class Fault:
    status: int | None = None  # respond with this status instead of handling
    retry_after: str | None = None
    hang_s: float = 0.0  # sleep this long before responding
    after_write: bool = False  # handle the request (so the write happens), then hang


class Faults:
    def __init__(self) -> None:
        self._queue: deque[Fault] = deque()
        self.down = False  # every request fails with 503 while True

    def fail_next(self, n: int = 1, *, status: int = 500, retry_after: str | None = None) -> None:
        self._queue.extend(Fault(status=status, retry_after=retry_after) for _ in range(n))

    def pass_next(self, n: int = 1) -> None:
        """Let the next ``n`` requests through untouched (to aim a later fault at a later request)."""
        self._queue.extend(Fault() for _ in range(n))

    def hang_next(self, n: int = 1, *, seconds: float = 2.0, after_write: bool = False) -> None:
        self._queue.extend(Fault(hang_s=min(seconds, MAX_HANG_S), after_write=after_write) for _ in range(n))

    def take(self) -> Fault | None:
        if self.down:
            return Fault(status=503)
        return self._queue.popleft() if self._queue else None

    @staticmethod
    async def hang(fault: Fault) -> None:
        await asyncio.sleep(fault.hang_s)
