"""Liveness/readiness and Prometheus metrics."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from copilot.api.deps import ServicesDep
from copilot.errors import AppError

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(services: ServicesDep) -> Response:
    checks: dict[str, object] = {}
    try:
        with services.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["db"] = "ok"
    except Exception as exc:  # report, do not raise: this endpoint must always answer
        checks["db"] = f"error: {type(exc).__name__}"
    kb_loaded = services.loaded("kb") is not None
    if kb_loaded:
        try:
            checks["vector_store"] = {"status": "ok", **services.kb.stats()}
        except Exception as exc:
            checks["vector_store"] = {"status": f"error: {type(exc).__name__}"}
    else:
        checks["vector_store"] = {"status": "not_loaded"}
    checks["models"] = {
        "embedding": "loaded" if services.is_loaded("embedder") else "not_loaded",
        "whisper": _whisper_state(services.loaded("transcriber")),
        "llm": services.settings.llm.model if services.settings.llm.enabled else "offline",
    }
    ok = checks["db"] == "ok" and (not kb_loaded or checks["vector_store"].get("status") == "ok")  # type: ignore[union-attr]
    from fastapi.responses import JSONResponse

    return JSONResponse({"status": "ok" if ok else "degraded", **checks}, status_code=200 if ok else 503)


@router.get("/metrics")
def metrics(request: Request, services: ServicesDep) -> Response:
    """Prometheus metrics; with COPILOT_METRICS_TOKEN set, only for ``Authorization: Bearer <it>``."""
    expected = services.settings.metrics_token
    if expected:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
            raise AppError(
                "unauthenticated", "请提供监控令牌：Authorization: Bearer <COPILOT_METRICS_TOKEN>。"
            )
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _whisper_state(transcriber) -> str:
    """``loaded`` only while the model is in memory: it loads on the first memo and is released after
    ``COPILOT_WHISPER_IDLE_SECONDS`` idle (the transcriber component itself stays)."""
    if transcriber is None:
        return "not_loaded"
    if getattr(transcriber, "loaded", True):
        return "loaded"
    return "released" if getattr(transcriber, "loads", 0) else "not_loaded"
