"""create_app(services): the FastAPI application, built the same way by the CLI and the tests."""

from __future__ import annotations

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


def create_app(services: Container) -> FastAPI:
    app = CopilotAPI(title="销售副驾 Sales Copilot", version="0.1.0", description="中文优先、每条建议可追溯依据的销售助手 API",
                  lifespan=_lifespan, docs_url=None, redoc_url=None)  # fmt: skip
    app.state.services = services
    app.state.metrics = services.metrics
    app.state.rate_limits = RateLimits.from_settings(services.settings)

    # Innermost first: the guard decides before any body is read (SECURITY.md).
    app.add_middleware(RequestGuard, services=services, limits=app.state.rate_limits)
    app.add_middleware(SecurityHeadersMiddleware, https=services.settings.https)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(RequestIdMiddleware)  # outermost: error bodies and logs carry the id
    install_error_handlers(app)
    for module in (
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
        rules,
    ):
        app.include_router(module.router)
    docs.install(app, enabled=services.settings.api_docs)  # Swagger UI from the installed package
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.fast_path = WebhookFastPath(partial(FastAPI.__call__, app), services, app.state.metrics)
    return app


def app_from_env() -> FastAPI:
    """The app of one ``copilot serve --workers N`` process: services built from the environment."""
    from copilot.container import build_container

    return create_app(build_container())
