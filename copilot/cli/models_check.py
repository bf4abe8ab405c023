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
                    services.settings.embedding_model,
                    models_dir=services.settings.models_dir,
                    backend=services.settings.embed_backend,
                )
            )
        else:
            vec = embedder.embed_queries(["客户嫌贵怎么回？"])
            status.update(embedder.describe())
            status["dim"] = int(vec.shape[1])
            status["ready_s"] = round(time.perf_counter() - start, 2)  # provision + load + first use
            _check_runtime(services, embedder, status)
            return status
        status["ok"] = True
    except ModelUnavailable as exc:
        status.update(ok=False, error=str(exc))
    return status


def _check_runtime(services: Container, embedder: Any, status: dict[str, Any]) -> None:
    """The ONNX runtime must embed like the torch path (cosine ≥ 0.999 on a fixed sample); a bundled
    model that fell back to torch although ONNX was asked for is reported with the fix."""
    from knowledge_base.onnx_embedder import export_status, onnx_dir_for

    wanted = services.settings.embed_backend
    status["ok"] = True
    if getattr(embedder, "backend", None) == "onnx":
        from knowledge_base.onnx_export import MIN_COSINE, compare_with_torch

        lowest = compare_with_torch(embedder.path, onnx_dir_for(embedder.path))
        status["onnx_min_cosine"] = round(lowest, 6)
        if lowest < MIN_COSINE:
            status.update(ok=False, error=(
                f"ONNX 导出与 torch 结果不一致（最小余弦 {lowest:.4f} < {MIN_COSINE}）；"
                f"请删除 {onnx_dir_for(embedder.path)} 后重新运行 copilot models check"))  # fmt: skip
    elif (
        wanted == "onnx"
        and getattr(embedder, "backend", None) == "torch"
        and not services.settings.embedding_model
    ):
        _, reason = export_status(embedder.path)
        status["warning"] = (
            f"{reason or 'ONNX 运行时不可用'}，已退回 torch（更慢、更占内存）；"
            "请安装 onnx（pip install onnx）后重新运行 copilot models check，或设置 COPILOT_EMBED_BACKEND=torch"
        )


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
