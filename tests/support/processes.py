"""Real `copilot` processes for reliability tests: start, wait until they answer, kill, collect logs.

    env = copilot_env(home=tmp_path / "home", database_url=url)
    with ProcessGroup(tmp_path / "logs") as procs:
        api = procs.serve(env)              # `copilot serve` on a free 127.0.0.1 port, /healthz answering
        httpx.get(f"{api.url}/healthz")
        procs.kill(api)                     # SIGKILL to its whole process group

Every process runs in its own session (process group), so a kill takes its children with it, and the
group is stopped on exit even when the test failed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
_SCRUB = ("COPILOT_", "OPENAI_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")

__all__ = ["CopilotProcess", "ProcessGroup", "copilot_env", "free_port", "wait_for"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def copilot_env(*, home: Path, database_url: str, **settings: str) -> dict[str, str]:
    """The environment of a `copilot` process: this one without keys, proxies or COPILOT_*, plus
    ``settings`` given as ``COPILOT_…`` names."""
    from tests.conftest import MODELS_DIR

    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
    env.update(
        COPILOT_HOME=str(home),
        COPILOT_MODELS_DIR=str(MODELS_DIR),
        COPILOT_DATABASE_URL=database_url,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        ANONYMIZED_TELEMETRY="False",
        NO_PROXY="127.0.0.1,localhost",
        PYTHONPATH=str(REPO),
        COPILOT_RATE_LIMITS="false",  # as in-process tests: the abuse limits have their own tests
    )
    env.update(settings)
    return env


@dataclass
class CopilotProcess:
    proc: subprocess.Popen
    log: Path
    url: str | None = None  # http://127.0.0.1:PORT for `serve`

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class ProcessGroup:
    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.logs.mkdir(parents=True, exist_ok=True)
        self.started: list[CopilotProcess] = []

    def start(self, env: dict[str, str], *args: str, name: str) -> CopilotProcess:
        log = self.logs / f"{len(self.started)}-{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(  # noqa: S603 -- our own console script
                [str(BIN / "copilot"), *args],
                env=env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started = CopilotProcess(proc, log)
        self.started.append(started)
        return started

    def serve(self, env: dict[str, str], *, timeout: float = 60.0, warm: bool = False) -> CopilotProcess:
        """`copilot serve` on a free port; returns once GET /healthz answers (200, or 503 when degraded).
        ``warm``: let it load the models in the background at start (as `make run` does); off by default
        so that reliability tests do not spend the shared cores on models they never use."""
        port = free_port()
        args = ("--host", "127.0.0.1", "--port", str(port), *(() if warm else ("--no-warm",)))
        api = self.start(env, "serve", *args, name=f"serve-{port}")
        api.url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            if not api.alive():
                raise AssertionError(f"copilot serve exited ({api.proc.returncode}):\n{api.output()[-3000:]}")
            try:
                return httpx.get(f"{api.url}/healthz", timeout=2).status_code in (200, 503)
            except httpx.HTTPError:
                return False

        wait_for(up, timeout, f"copilot serve on port {port}", step=0.1)
        return api

    def kill(self, target: CopilotProcess, sig: int = signal.SIGKILL, timeout: float = 15.0) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(target.proc.pid, sig)
        try:
            target.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(target.proc.pid, signal.SIGKILL)
            target.proc.wait(timeout)

    def stop_all(self) -> None:
        for target in self.started:
            if target.alive():
                self.kill(target, signal.SIGTERM, timeout=10)

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
