"""The real_llm tier: the LLM paths against a real OpenAI-compatible engine on 127.0.0.1.

Skipped, with the reason, unless ``COPILOT_TEST_LLM`` is set (read here, before the per-test scrub):

* ``local`` — start the bundled engine (``copilot llm serve``, extra ``.[local-llm]``) for the session;
* ``http://127.0.0.1:PORT/v1`` — use an engine that is already running.

``COPILOT_TEST_LLM_REQUIRED=1`` (``make test-llm``) turns "the engine cannot start" into a failure.
Invariants, not wording: answers accepted, citations verify, nothing written without confirmation,
proposals within policy, extraction that validates. Figures are printed for the closing note.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import MODELS_DIR

ENGINE = os.environ.get("COPILOT_TEST_LLM", "").strip()
REQUIRED = os.environ.get("COPILOT_TEST_LLM_REQUIRED") == "1"
CONTEXT_TOKENS = int(os.environ.get("COPILOT_TEST_LLM_CONTEXT_TOKENS", "4096"))
# Inference threads: `copilot llm serve` defaults to cores − 1 (llama.cpp spin-waits beside busy
# processes); CI runs this tier alone on the machine and gives it every core.
THREADS = os.environ.get("COPILOT_TEST_LLM_THREADS", "").strip()
START_TIMEOUT_S = 180
MODEL = "qwen2.5-coder-0.5b-instruct"


def _unavailable(reason: str):
    if REQUIRED:
        pytest.fail(f"real_llm tier required but {reason}", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen | None, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(1)
    return False


@pytest.fixture(scope="session")
def engine_url(tmp_path_factory):
    """The /v1 base URL of a running engine for this session."""
    if not ENGINE:
        pytest.skip(
            "real_llm tier: set COPILOT_TEST_LLM=local (`make test-llm` starts llama.cpp) "
            "or to the /v1 URL of a running OpenAI-compatible engine"
        )
    if ENGINE.startswith("http"):
        if not _wait(ENGINE.rstrip("/"), None, time.monotonic() + 10):
            _unavailable(f"no engine answers at {ENGINE}")
        yield ENGINE.rstrip("/")
        return
    from copilot.infra.llm.local_engine import INSTALL_HINT, engine_installed

    if not engine_installed():
        _unavailable(f"llama-cpp-python is not installed: {INSTALL_HINT}")
    port = _free_port()
    log = tmp_path_factory.mktemp("engine") / "serve.log"
    env = {**os.environ, "COPILOT_MODELS_DIR": str(MODELS_DIR), "COPILOT_LLM_CONTEXT_TOKENS": str(CONTEXT_TOKENS),
           "COPILOT_HOME": str(tmp_path_factory.mktemp("engine-home"))}  # fmt: skip
    cmd = [
        sys.executable,
        "-c",
        "from copilot.cli.main import main; main()",
        "llm",
        "serve",
        "--port",
        str(port),
        *(["--threads", THREADS] if THREADS else []),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2]
        )  # noqa: S603
    url = f"http://127.0.0.1:{port}/v1"
    try:
        if not _wait(url, proc, time.monotonic() + START_TIMEOUT_S):
            tail = log.read_text(errors="replace")[-1500:]
            _unavailable(f"`copilot llm serve` did not come up in {START_TIMEOUT_S} s:\n{tail}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
