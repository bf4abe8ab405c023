"""One mapping of HTTP transport failures and statuses onto CRM errors (retryable vs permanent)."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable

import httpx

from connectors.crm.errors import CRMAuthError, CRMRejected, CRMUnavailable


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def send(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    crm: str,
    describe: Callable[[httpx.Response], tuple[str, str | None]],
    **kwargs,
) -> httpx.Response:
    """Send one request; return a 2xx response or raise CRMUnavailable / CRMRejected / CRMAuthError.

    ``describe(response)`` extracts the CRM's own (message, error code) from an error body.
    """
    try:
        response = client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise CRMUnavailable(f"{crm} 请求超时", crm=crm) from exc
    except httpx.TransportError as exc:
        raise CRMUnavailable(f"无法连接 {crm}（{type(exc).__name__}）", crm=crm) from exc
    if response.is_success:
        return response
    status = response.status_code
    message, code = describe(response)
    message = message or f"HTTP {status}"
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise CRMUnavailable(message, crm=crm, status=status, code=code, retry_after=retry_after)
    if status in (401, 403) and code != "REQUEST_LIMIT_EXCEEDED":
        raise CRMAuthError(message, crm=crm, status=status, code=code)
    if code == "REQUEST_LIMIT_EXCEEDED":  # Salesforce's daily API limit: 403, but it passes
        raise CRMUnavailable(message, crm=crm, status=status, code=code)
    raise CRMRejected(message, crm=crm, status=status, code=code)
