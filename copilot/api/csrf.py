"""CSRF defence for cookie-authenticated requests (bearer-token calls are not affected).

Two checks on every state-changing request (POST, PUT, PATCH, DELETE) that a session cookie
authenticates:

* where it comes from: a browser's ``Sec-Fetch-Site`` must be ``same-origin`` (or ``none``: typed by
  the user), and an ``Origin`` must be this site's own (``Host``, or ``X-Forwarded-Host`` set by the
  proxy). A browser cannot forge either header for a cross-site request.
* what it carries: ``X-CSRF-Token`` must equal the session's own CSRF token (``/api/*``), which only
  our pages can read (``<meta name="csrf-token">``) and send; HTML forms (logout) send the field
  ``csrf_token``, checked by the route.

The login form has no session yet; only its origin is checked (login CSRF).
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.datastructures import Headers

from copilot.api.auth import Credential

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
HEADER = "x-csrf-token"
FORM_FIELD = "csrf_token"
CROSS_SITE = "跨站请求被拒绝：请在销售副驾自己的页面中操作。"
MISSING_TOKEN = "缺少或错误的 CSRF 令牌：请刷新页面后重试（脚本调用请改用 Authorization: Bearer 令牌）。"  # noqa: S105 - a message


def cross_site(headers: Headers) -> bool:
    """Whether a browser says the request comes from another site."""
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return True
    origin = headers.get("origin")
    if origin is None:
        return False  # not a browser, or an old one: the token check still applies
    netloc = urlsplit(origin).netloc.lower() if origin != "null" else ""
    ours = {h.strip().lower() for h in (headers.get("host"), headers.get("x-forwarded-host")) if h}
    return not netloc or netloc not in ours


def token_matches(sent: str | None, credential: Credential) -> bool:
    expected = credential.session.csrf_token if credential.session is not None else ""
    return bool(sent) and bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


def csrf_failure(method: str, path: str, headers: Headers, credential: Credential | None) -> str | None:
    """A Chinese reason to refuse the request (403 ``csrf_failed``), or None."""
    if method not in UNSAFE_METHODS:
        return None
    if credential is None or credential.via != "cookie":
        return CROSS_SITE if path == "/login" and cross_site(headers) else None
    if cross_site(headers):
        return CROSS_SITE
    if path.startswith("/api/") and not token_matches(headers.get(HEADER), credential):
        return MISSING_TOKEN
    return None
