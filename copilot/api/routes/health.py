"""Liveness/readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from copilot.api.deps import ServicesDep

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
        "whisper": "loaded" if services.is_loaded("transcriber") else "not_loaded",
        "llm": services.settings.llm.model if services.settings.llm.enabled else "offline",
    }
    ok = checks["db"] == "ok" and (not kb_loaded or checks["vector_store"].get("status") == "ok")  # type: ignore[union-attr]
    from fastapi.responses import JSONResponse

    return JSONResponse({"status": "ok" if ok else "degraded", **checks}, status_code=200 if ok else 503)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
