"""create_app(services): the FastAPI application, built the same way by the CLI and the tests."""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from copilot.api.guard import RequestGuard
from copilot.api.rate_limits import RateLimits
from copilot.api.request_ids import RequestIdMiddleware
from copilot.api.routes import (
    adoption,
    channels,
    chat,
    customers,
    docs,
    health,
    kb,
    local_cli,
    memos,
    notifications,
    rules,
    suggestions,
    web,
)
from copilot.api.security_headers import SecurityHeadersMiddleware
from copilot.api.webhook_fast_path import WebhookFastPath
from copilot.container import Container
from copilot.errors import install_error_handlers
from copilot.features.writeback.delivery import OutboxLoop
from copilot.infra.metrics import MetricsMiddleware

logger = logging.getLogger(__name__)
LOCAL_CLI_HASH_ENV = "COPILOT_LOCAL_CLI_TOKEN_SHA256"
STATIC_DIR = Path(__file__).resolve().parents[1] / "web" / "static"


@asynccontextmanager
async def _lifespan(app: FastAPI):
    """Embedded mode: the server delivers the CRM outbox itself (Redis mode: `copilot worker` does)."""
    services: Container = app.state.services
    interval = services.settings.outbox_interval_s
    loop = None if services.settings.redis_url else OutboxLoop(services.writeback.tick, interval).start()
    try:
        yield
    finally:
        if loop is not None:
            loop.stop()


class CopilotAPI(FastAPI):
    """FastAPI, with the webhook acknowledgement path in front of its middleware stack."""

    fast_path: WebhookFastPath

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.fast_path(scope, receive, send)


def create_app(services: Container, *, local_cli_token_sha256: str | None = None) -> FastAPI:
    """The app over ``services``; ``local_cli_token_sha256`` opens ``/api/local/*`` to the CLI holding
    that token (`copilot serve` mints it: copilot.cli.local_server)."""
    app = CopilotAPI(title="销售副驾 Sales Copilot", version="0.1.0", description="中文优先、每条建议可追溯依据的销售助手 API",
                  lifespan=_lifespan, docs_url=None, redoc_url=None)  # fmt: skip
    app.state.services = services
    app.state.metrics = services.metrics
    app.state.rate_limits = RateLimits.from_settings(services.settings)
    app.state.local_cli_token_sha256 = local_cli_token_sha256

    # Innermost first: the guard decides before any body is read (SECURITY.md).
    app.add_middleware(RequestGuard, services=services, limits=app.state.rate_limits)
    app.add_middleware(SecurityHeadersMiddleware, https=services.settings.https)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(RequestIdMiddleware)  # outermost: error bodies and logs carry the id
    install_error_handlers(app)
    routes = (
        health,
        chat,
        customers,
        kb,
        web,
        channels,
        memos,
        suggestions,
        adoption,
        notifications,
        local_cli,
        rules,
    )
    for module in routes:
        app.include_router(module.router)
    docs.install(app, enabled=services.settings.api_docs)  # Swagger UI from the installed package
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.fast_path = WebhookFastPath(partial(FastAPI.__call__, app), services, app.state.metrics)
    return app


def warm_in_background(services: Container) -> threading.Thread:
    """Build the knowledge base (embedding model, vector store) and the suggester on a daemon thread, so
    the first search or suggestion — and the CLI asking this server — does not wait for them."""

    def warm() -> None:
        try:
            for name in ("engine", "users", "web_sessions", "crm", "rules", "memo_repo", "suggester", "kb"):
                getattr(services, name)
            kb = services.loaded("kb")
            if kb is not None:
                kb.search("预热", k=1)  # loads the word segmenter's dictionary and the index pages
        except Exception as exc:  # the request that needs it reports the error
            logger.warning("warm-up stopped: %s", type(exc).__name__)

    thread = threading.Thread(target=warm, name="copilot-warm-up", daemon=True)
    thread.start()
    return thread


def app_from_env() -> FastAPI:
    """The app of one ``copilot serve --workers N`` process: services built from the environment."""
    import os

    from copilot.container import build_container

    # `copilot serve --workers N` passes the local CLI token's hash to its worker processes
    services = build_container()
    warm_in_background(services)
    return create_app(services, local_cli_token_sha256=os.environ.get(LOCAL_CLI_HASH_ENV) or None)
