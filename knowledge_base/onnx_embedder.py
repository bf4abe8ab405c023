"""A sentence-transformers folder served by onnxruntime + ``tokenizers``: no torch in the process.

The ONNX export (``knowledge_base.onnx_export``) lives beside the model folder, in
``<models_dir>/<model>.onnx/``, and is made once at provisioning by ``ensure_onnx_export``, which runs
the exporter in a child process (the only place torch is imported) and publishes the folder only if the
export matches the torch path (cosine ≥ 0.999 on a fixed sample).

Threads, for 2 cores: the session has one intra-op thread, so a query runs on the caller's thread with
no thread hand-offs (12 ms vs 26 ms through torch on this machine kind). A batch (ingest) is tokenised,
sorted by length (little padding) and cut into sub-batches that run concurrently, one per core, on the
same session (onnxruntime's ``run`` is thread-safe and releases the GIL), so the weights load once.

Memory: the weights are memory-mapped (external data), onnxruntime's arena is off and a sub-batch holds
at most ``MAX_BATCH_TOKENS`` padded tokens, so a long-document ingest does not leave a server holding
gigabytes of attention buffers (with the arena on, one 32 × 512-token batch kept ~2 GB); freed memory
is handed back to the system after each batch. The tokenizer is ``CompactTokenizer`` (the same ids with
the pieces Chinese/English text can use: ~90 MB instead of ~265 MB), cached in the export's folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from filelock import FileLock

from knowledge_base.compact_tokenizer import CompactTokenizer
from knowledge_base.prompting import ModelUnavailable, PromptedEncoder, normalise

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"  # as knowledge_base.onnx_export writes it (with model.onnx.data beside it)
EXPORT_MANIFEST = "copilot-onnx-manifest.json"
EXPORT_FORMAT_VERSION = 1
EXPORT_TIMEOUT_S = 900.0
SMALL_BATCH = 4  # up to this many texts run as one sub-batch on the caller's thread (queries)
# Padded tokens per sub-batch. Small sub-batches are faster here, not only lighter: with the arena off,
# each run allocates its activations afresh, and 512-token runs (2–3 passages) encoded a 418-chunk corpus
# at 33.5 chunks/s against 24.0 at 4096 tokens (torch: 24.7) on 2 cores; 256 and 1024 were slower.
MAX_BATCH_TOKENS = 512


def _return_freed_memory() -> None:
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _default_batch_threads() -> int:
    """All cores, unless the process was given a thread count the way torch is (``OMP_NUM_THREADS``:
    ``copilot worker`` sets 1 per process and scales with processes)."""
    with contextlib.suppress(ValueError):
        if (wanted := int(os.environ.get("OMP_NUM_THREADS", "0"))) > 0:
            return wanted
    return max(1, os.cpu_count() or 1)


def length_batches(lengths: Sequence[int], *, max_size: int, max_tokens: int) -> list[list[int]]:
    """Indices sorted by length (longest first), cut into batches of at most ``max_size`` texts and
    ``max_tokens`` padded tokens (a text longer than the budget goes alone)."""
    order = sorted(range(len(lengths)), key=lambda n: lengths[n], reverse=True)
    batches: list[list[int]] = []
    for n in order:
        if (
            batches
            and len(batches[-1]) < max_size
            and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= max_tokens
        ):
            batches[-1].append(n)
        else:
            batches.append([n])
    return batches


def onnx_dir_for(model_dir: Path) -> Path:
    """Where the export of ``model_dir`` lives: a sibling folder ``<name>.onnx``."""
    model_dir = Path(model_dir)
    return model_dir.parent / f"{model_dir.name}.onnx"


def _source_fingerprint(model_dir: Path) -> dict[str, object]:
    """What the export was made from: the weights' recorded sha256 when the folder has a copilot
    manifest (the bundled model), else the weights files' sizes and modification times."""
    manifest = model_dir / "copilot-manifest.json"
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8")).get("weights_sha256")
    except (OSError, ValueError):
        recorded = None
    if recorded:
        return {"weights_sha256": recorded}
    files = sorted(p for p in model_dir.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())
    return {"weights": [[p.name, p.stat().st_size, int(p.stat().st_mtime)] for p in files]}


def read_export_manifest(onnx_dir: Path) -> dict | None:
    try:
        return json.loads((Path(onnx_dir) / EXPORT_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def export_status(model_dir: Path) -> tuple[Path | None, str]:
    """``(onnx file, "")`` when a current export of ``model_dir`` exists, else ``(None, reason)``."""
    onnx_dir = onnx_dir_for(model_dir)
    manifest = read_export_manifest(onnx_dir)
    if manifest is None:
        return None, f"缺少 ONNX 导出 {onnx_dir}"
    if manifest.get("format_version") != EXPORT_FORMAT_VERSION:
        return None, f"ONNX 导出 {onnx_dir} 版本过旧"
    if manifest.get("source") != _source_fingerprint(Path(model_dir)):
        return None, f"ONNX 导出 {onnx_dir} 与模型权重不一致（模型已重建）"
    onnx_file = onnx_dir / ONNX_FILE
    if not onnx_file.is_file():
        return None, f"ONNX 导出 {onnx_dir} 不完整"
    return onnx_file, ""


def ensure_onnx_export(model_dir: Path, *, timeout_s: float = EXPORT_TIMEOUT_S) -> Path:
    """Return the ONNX file of ``model_dir``, exporting it once (in a child process) if absent or stale.

    Raises ``ModelUnavailable`` (中文) when the export fails or does not match the torch path."""
    model_dir = Path(model_dir)
    onnx_file, _ = export_status(model_dir)
    if onnx_file is not None:
        return onnx_file
    target = onnx_dir_for(model_dir)
    with FileLock(str(target.parent / f".{target.name}.lock")):
        onnx_file, _ = export_status(model_dir)
        if onnx_file is not None:
            return onnx_file
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            facts = _run_exporter(model_dir, tmp, timeout_s)
            manifest = {
                "format_version": EXPORT_FORMAT_VERSION,
                "source": _source_fingerprint(model_dir),
                **facts,
            }
            (tmp / EXPORT_MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
            if target.exists():
                shutil.rmtree(target, ignore_errors=True)
            os.rename(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target / ONNX_FILE


def _run_exporter(model_dir: Path, out_dir: Path, timeout_s: float) -> dict[str, object]:
    started = time.perf_counter()
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])  # so the child finds this package when run from source
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("HF_HUB_OFFLINE", "1")
    command = [sys.executable, "-m", "knowledge_base.onnx_export", str(model_dir), str(out_dir)]
    try:
        done = subprocess.run(  # noqa: S603 - our own module, with our interpreter
            command, capture_output=True, text=True, timeout=timeout_s, env=env, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ModelUnavailable(f"导出 ONNX 超时（{timeout_s:.0f} 秒）：{model_dir}") from exc
    lines = done.stdout.strip().splitlines()
    try:
        facts = json.loads(lines[-1]) if lines else {}
    except ValueError:
        facts = {}
    if done.returncode != 0 or "min_cosine" not in facts:
        tail = (done.stderr or "").strip().splitlines()[-3:]
        detail = f"余弦相似度 {facts['min_cosine']} < 0.999" if "min_cosine" in facts else " / ".join(tail)
        raise ModelUnavailable(
            f"向量模型 {model_dir} 导出 ONNX 失败（{detail}）；需要 torch 与 onnx（pip install onnx），"
            "或设置 COPILOT_EMBED_BACKEND=torch"
        )
    facts["export_seconds"] = round(time.perf_counter() - started, 1)
    return facts


class OnnxEmbedder(PromptedEncoder):
    """The ``Embedder`` port on onnxruntime. ``model_dir`` is the sentence-transformers folder (tokenizer,
    prompts, maximum length); ``onnx_file`` its export."""

    backend = "onnx"

    def __init__(
        self,
        model_dir: Path | str,
        onnx_file: Path | str,
        *,
        name: str | None = None,
        batch_size: int = 32,
        query_threads: int = 1,
        batch_threads: int | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
            import tokenizers  # noqa: F401 - checked here, used by CompactTokenizer
        except ImportError as exc:  # pragma: no cover - dependencies of the distribution (via chromadb)
            raise ModelUnavailable(
                "缺少 onnxruntime 或 tokenizers；请安装：pip install onnxruntime tokenizers"
            ) from exc
        started = time.perf_counter()
        self.path = Path(model_dir)
        self.onnx_file = Path(onnx_file)
        self.name = name or self.path.name
        self.batch_size = batch_size
        self.query_threads = query_threads
        self.batch_threads = batch_threads or _default_batch_threads()
        try:
            config = self._read_json("sentence_bert_config.json")
            st_config = self._read_json("config_sentence_transformers.json")
            model_config = self._read_json("config.json")
            options = ort.SessionOptions()
            options.intra_op_num_threads = query_threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.enable_cpu_mem_arena = False
            self._session = ort.InferenceSession(
                str(self.onnx_file), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelUnavailable(f"无法加载向量模型 {self.path}（ONNX {self.onnx_file}）：{exc}") from exc
        max_length = int(config.get("max_seq_length") or model_config.get("max_position_embeddings") or 512)
        try:
            self._tokenizer = CompactTokenizer(
                self.path / "tokenizer.json", max_length=max_length, cache_dir=self.onnx_file.parent
            )
        except Exception as exc:
            raise ModelUnavailable(f"无法加载向量模型 {self.path} 的分词器：{exc}") from exc
        self._pad_id = int(model_config.get("pad_token_id") or 0)
        gc.collect()  # the tokenizer's JSON, parsed and pruned, is garbage now: hand it back
        _return_freed_memory()
        prompts = st_config.get("prompts") or {}
        self._query_prompt: str | None = prompts.get("query")
        self._passage_prompt: str | None = prompts.get("passage")
        self._dim = int(model_config.get("hidden_size") or self.encode_raw(["dim"]).shape[1])
        self.load_seconds = time.perf_counter() - started

    def _read_json(self, name: str) -> dict:
        path = self.path / name
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    @property
    def dim(self) -> int:
        return self._dim

    def _run(self, encodings: list[np.ndarray]) -> np.ndarray:
        length = max(len(e) for e in encodings)
        ids = np.full((len(encodings), length), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), length), dtype=np.int64)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc)] = enc
            mask[row, : len(enc)] = 1
        (vectors,) = self._session.run(["sentence_embedding"], {"input_ids": ids, "attention_mask": mask})
        return vectors

    def encode_raw(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts as given (prompts already applied): float32 unit rows, in input order."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        if len(texts) <= SMALL_BATCH:
            return normalise(self._run(self._tokenizer.encode(texts)))
        encodings = self._tokenizer.encode(texts)
        batches = length_batches(
            [len(e) for e in encodings], max_size=self.batch_size, max_tokens=MAX_BATCH_TOKENS
        )
        workers = min(self.batch_threads, len(batches))
        if workers <= 1:
            results = [self._run([encodings[n] for n in batch]) for batch in batches]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="onnx-embed") as pool:
                results = list(pool.map(lambda batch: self._run([encodings[n] for n in batch]), batches))
        out = np.empty((len(texts), results[0].shape[1]), dtype=np.float32)
        for batch, vectors in zip(batches, results, strict=True):
            out[batch] = vectors
        _return_freed_memory()
        return normalise(out)

    def _encode(self, texts: Sequence[str], prompt: str | None) -> np.ndarray:
        return self.encode_raw([(prompt or "") + t for t in texts])

    def describe(self) -> dict[str, object]:
        return {
            **super().describe(),
            "onnx": str(self.onnx_file),
            "threads": {"query": self.query_threads, "batch": self.batch_threads},
        }
