"""/docs: Swagger UI served from this server (no CDN: offline deployments get a working page).

The assets come from the installed ``fastapi-offline`` package (``swagger-ui-bundle.js``,
``swagger-ui.css``, ``redoc.standalone.js``); the pages run no inline script (CSP): the start-up code
is ``/static/docs.js`` / ``/static/redoc.js``. COPILOT_API_DOCS=false turns /docs and /redoc off;
when the package is missing they are off too (the OpenAPI document stays at /openapi.json).
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from copilot.api.auth import cached

logger = logging.getLogger(__name__)

ASSETS = "/docs/assets"
_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{csrf}">
{head}</head>
<body><div id="{root}"></div>
<script src="{bundle}"></script>
<script src="{start}"></script>
</body></html>
"""


def assets_dir() -> Path | None:
    """The folder holding swagger-ui-bundle.js, or None when the package is not installed."""
    try:
        folder = Path(str(resources.files("fastapi_offline") / "static"))
    except ModuleNotFoundError:
        return None
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def _csrf(request: Request) -> str:
    _, credential = cached(request.scope)
    session = credential.session if credential is not None else None
    return session.csrf_token if session is not None else ""


def install(app: FastAPI, *, enabled: bool) -> bool:
    """Add /docs, /redoc and their assets to ``app``; False when they stay off."""
    folder = assets_dir() if enabled else None
    if folder is None:
        if enabled:
            logger.warning("/docs is off: the fastapi-offline package (Swagger UI assets) is not installed")
        return False
    app.mount(ASSETS, StaticFiles(directory=folder), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger(request: Request) -> HTMLResponse:
        return HTMLResponse(
            _PAGE.format(
                title=f"{app.title} - API 文档", csrf=_csrf(request), root="swagger-ui",
                head=f'<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">',
                bundle=f"{ASSETS}/swagger-ui-bundle.js", start="/static/docs.js",
            )
        )  # fmt: skip

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        return HTMLResponse(
            _PAGE.format(
                title=f"{app.title} - ReDoc", csrf="", root="redoc", head="",
                bundle=f"{ASSETS}/redoc.standalone.js", start="/static/redoc.js",
            )
        )  # fmt: skip

    return True
