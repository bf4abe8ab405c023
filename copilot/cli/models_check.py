"""`copilot models check`: are the bundled models present and loadable — and if not, what to install."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from copilot.container import Container


def _embedding_status(services: Container, load: bool) -> dict[str, Any]:
    from knowledge_base.embedder import ModelUnavailable

    status: dict[str, Any] = {"name": "embedding", "kind": "sentence-transformers"}
    try:
        start = time.perf_counter()
        embedder = services.embedder if load else None
        if embedder is None:
            from knowledge_base.embedder import resolve_embedding_model

            status.update(
                resolve_embedding_model(
                    services.settings.embedding_model, models_dir=services.settings.models_dir
                )
            )
        else:
            vec = embedder.embed_queries(["客户嫌贵怎么回？"])
            status.update(embedder.describe())
            status["dim"] = int(vec.shape[1])
            status["ready_s"] = round(time.perf_counter() - start, 2)  # provision + load + first use
        status["ok"] = True
    except ModelUnavailable as exc:
        status.update(ok=False, error=str(exc))
    return status


def _whisper_status(services: Container, load: bool) -> dict[str, Any]:
    from copilot.voice import ModelUnavailable
    from copilot.voice.whisper_model import describe_whisper_model, resolve_whisper_model

    status: dict[str, Any] = {"name": "whisper", "kind": "faster-whisper"}
    try:
        path = resolve_whisper_model(services.settings.whisper_model, services.settings.models_dir)
        status.update(describe_whisper_model(path))
        if load:
            start = time.perf_counter()
            services.transcriber.load()
            status["ready_s"] = round(time.perf_counter() - start, 2)  # provision + load + first use
        status["ok"] = True
    except ModelUnavailable as exc:
        status.update(ok=False, error=str(exc))
    return status


def check_models(services: Container, *, load: bool = True) -> list[dict[str, Any]]:
    """Provision (once) and report both bundled models; ``load=True`` also loads them."""
    return [_embedding_status(services, load), _whisper_status(services, load)]
