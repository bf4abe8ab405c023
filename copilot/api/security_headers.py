"""Security headers on every response (plain ASGI; the webhook fast path answers platforms itself).

* ``Content-Security-Policy``: pages load scripts, styles, images and data from this origin only and
  run no inline script (every script is a file under /static); nothing may frame them. API answers
  get ``default-src 'none'``. Swagger UI and ReDoc (/docs, /redoc) also need inline styles.
* ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff``, ``Referrer-Policy`` (``no-referrer``
  on /login, whose links carry one-time codes; ``same-origin`` elsewhere).
* ``Cache-Control: no-store`` on ``/api/*``: customer data is not kept by browsers or proxies.
* ``Strict-Transport-Security`` when COPILOT_HTTPS says the site is served over HTTPS.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
DOCS_CSP = PAGE_CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
DATA_CSP = "default-src 'none'; frame-ancestors 'none'"
HSTS = "max-age=31536000"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, https: bool = False) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                html = headers.get("content-type", "").startswith("text/html")
                csp = (DOCS_CSP if path.startswith(("/docs", "/redoc")) else PAGE_CSP) if html else DATA_CSP
                headers.setdefault("content-security-policy", csp)
                headers.setdefault("x-frame-options", "DENY")
                headers.setdefault("x-content-type-options", "nosniff")
                headers.setdefault("referrer-policy", "no-referrer" if path == "/login" else "same-origin")
                if path.startswith("/api/"):
                    headers.setdefault("cache-control", "no-store")
                if self.https:
                    headers.setdefault("strict-transport-security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)
