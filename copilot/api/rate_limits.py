"""Abuse limits with the ``limits`` library: moving windows kept in Redis when COPILOT_REDIS_URL is set
(shared by every API process), in memory otherwise.

    limits = RateLimits.from_settings(settings)
    retry_after = await limits.hit("expensive", user.id)    # None = allowed; else seconds to wait

Named limits (each a ``limits`` string such as ``60/minute``; empty = off; COPILOT_RATE_LIMITS=false
turns all off):

* ``login``     failed logins per client address (COPILOT_RATE_LIMIT_LOGIN): a lockout, not a quota
* ``expensive`` per user: chat, KB search, suggestions, digest, rule previews and drafts
  (COPILOT_RATE_LIMIT_EXPENSIVE)
* ``uploads``   per user: memo uploads (COPILOT_RATE_LIMIT_UPLOADS)

A refused request is 429 ``rate_limited`` with ``Retry-After``. If the limit store itself fails
(Redis down), requests are let through and a warning is logged: the limits protect capacity, they
are not an authorisation check.
"""

from __future__ import annotations

import logging
import math
import re
import time

from limits import RateLimitItem, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.concurrency import run_in_threadpool

from copilot.settings import Settings

logger = logging.getLogger(__name__)

# (method, path pattern) → the limit that guards it
ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"^/api/chat/?$"), "expensive"),
    ("POST", re.compile(r"^/api/chat/stream/?$"), "expensive"),
    ("GET", re.compile(r"^/api/kb/search/?$"), "expensive"),
    ("GET", re.compile(r"^/api/customers/[^/]+/suggestions/?$"), "expensive"),
    ("GET", re.compile(r"^/api/suggestions/digest/?$"), "expensive"),
    ("POST", re.compile(r"^/api/rules/(preview|drafts)/?$"), "expensive"),  # every visible customer / the KB
    ("POST", re.compile(r"^/api/memos/?$"), "uploads"),
)


def route_limit(method: str, path: str) -> str | None:
    return next((name for m, pattern, name in ROUTES if m == method and pattern.match(path)), None)


class RateLimits:
    def __init__(self, storage: Storage, items: dict[str, RateLimitItem], *, remote: bool) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self.items = items
        self._remote = remote  # Redis: calls leave the event loop

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        configured = {
            "login": settings.rate_limit_login,
            "expensive": settings.rate_limit_expensive,
            "uploads": settings.rate_limit_uploads,
        }
        items = {}
        for name, value in configured.items() if settings.rate_limits else ():
            if not value.strip():
                continue
            try:
                items[name] = parse(value)
            except ValueError:
                raise ValueError(
                    f"COPILOT_RATE_LIMIT_{name.upper()}={value!r} 不是合法的频率，例如 60/minute、10/15 minutes（留空则关闭）"
                ) from None
        if settings.redis_url:
            prefix = f"copilot-limits:{settings.redis_queue}"
            return cls(storage_from_string(settings.redis_url, key_prefix=prefix), items, remote=True)
        return cls(storage_from_string("memory://"), items, remote=False)

    async def hit(self, name: str, key: str) -> float | None:
        """Count one request; None when allowed, else the seconds until one is allowed again."""
        return await self._call(self._hit, name, key)

    async def test(self, name: str, key: str) -> float | None:
        """Like ``hit`` without counting (a login is only counted when it fails)."""
        return await self._call(self._test, name, key)

    async def _call(self, fn, name: str, key: str) -> float | None:
        item = self.items.get(name)
        if item is None:
            return None
        try:
            return await run_in_threadpool(fn, item, name, key) if self._remote else fn(item, name, key)
        except Exception as exc:  # noqa: BLE001 -- fail open: see the module docstring
            logger.warning("rate limit %s not checked: %s", name, type(exc).__name__)
            return None

    def _hit(self, item: RateLimitItem, name: str, key: str) -> float | None:
        return None if self._limiter.hit(item, name, key) else self._retry_after(item, name, key)

    def _test(self, item: RateLimitItem, name: str, key: str) -> float | None:
        return None if self._limiter.test(item, name, key) else self._retry_after(item, name, key)

    def _retry_after(self, item: RateLimitItem, name: str, key: str) -> float:
        reset = self._limiter.get_window_stats(item, name, key).reset_time
        return max(1.0, math.ceil(reset - time.time()))
