"""One way to build HTTP clients for outside systems: explicit timeouts, a base URL, no env proxies
picked up by surprise (the CRM adapters map failures onto CRM errors in ``connectors.crm.transport``)."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def make_client(
    base_url: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """An ``httpx.Client`` for one outside system. ``timeout`` bounds every phase of every request."""
    return httpx.Client(
        base_url=base_url.rstrip("/"),
        headers=dict(headers or {}),
        timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
        transport=transport,
        trust_env=False,
        follow_redirects=False,
    )
