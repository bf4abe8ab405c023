"""The scale-out deployment on 127.0.0.1: the machine's PostgreSQL and Redis, a Chroma server started
here (`chroma run`), and `copilot worker` processes. Each piece skips with its reason when missing."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import MODELS_DIR, POSTGRES_URL, REPO
from tests.support.pg_fresh import fresh_database

REDIS_URL = os.environ.get("COPILOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="session")
def redis_url() -> str:
    from redis import Redis
    from redis.exceptions import RedisError

    client = Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except RedisError:
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(scope="session")
def chroma_url(tmp_path_factory) -> Iterator[str]:
    """A real Chroma server (`chroma run`) on a free port, for the whole test session."""
    exe = shutil.which("chroma", path=str(BIN)) or shutil.which("chroma")
    if exe is None:
        pytest.skip("the `chroma` command (chromadb) is not installed")
    port = _free_port()
    log = tmp_path_factory.mktemp("chroma") / "server.log"
    data = log.parent / "data"
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603
            [exe, "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"chroma run exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            return httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        _wait(up, 30, "the Chroma server")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database shared by one test module (the stack is expensive to fill)."""
    with fresh_database(POSTGRES_URL, prefix="copilot_scaleout") as url:
        yield url


@dataclass
class Stack:
    """One scale-out deployment: its environment, its queue, and the worker processes it started."""

    env: dict[str, str]
    queue_name: str
    logs: Path
    workers: list[subprocess.Popen] = field(default_factory=list)

    def start_worker(self, *, processes: int = 1, lease_s: int = 2) -> subprocess.Popen:
        """`copilot worker` in its own process group (so a kill takes its children with it)."""
        n = len(self.workers)
        out = (self.logs / f"worker{n}.log").open("wb")
        proc = subprocess.Popen(  # noqa: S603
            [
                str(BIN / "copilot"),
                "worker",
                "--queue",
                self.queue_name,
                "-n",
                str(processes),
                "--lease-s",
                str(lease_s),
            ],
            env=self.env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        self.workers.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def log(self, n: int) -> str:
        return (self.logs / f"worker{n}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                self.kill(proc, signal.SIGTERM)


@pytest.fixture(scope="module")
def stack(redis_url, chroma_url, pg_database, tmp_path_factory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("scaleout-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COPILOT_", "OPENAI_"))}
    env.update(
        COPILOT_HOME=str(home),
        COPILOT_MODELS_DIR=str(MODELS_DIR),
        COPILOT_DATABASE_URL=pg_database,
        COPILOT_CHROMA_URL=chroma_url,
        COPILOT_REDIS_URL=redis_url,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        ANONYMIZED_TELEMETRY="False",
        NO_PROXY="127.0.0.1,localhost",
        PYTHONPATH=str(REPO),  # the workers import the test jobs (tests.scaleout.jobs) by name
    )
    built = Stack(env=env, queue_name=f"copilot-test-{uuid.uuid4().hex[:8]}", logs=home)
    yield built
    built.stop_all()
    from redis import Redis

    client = Redis.from_url(redis_url)
    for key in client.scan_iter(f"*{built.queue_name}*"):
        client.delete(key)
    client.close()


@pytest.fixture
def stack_env(stack, monkeypatch) -> Stack:
    """This test process configured for the stack (after the per-test environment scrub)."""
    for name in ("COPILOT_DATABASE_URL", "COPILOT_CHROMA_URL", "COPILOT_REDIS_URL", "COPILOT_HOME"):
        monkeypatch.setenv(name, stack.env[name])
    return stack


@pytest.fixture
def queue(stack_env):
    from copilot.infra.jobs.redis_queue import RedisJobQueue

    q = RedisJobQueue(
        stack_env.env["COPILOT_REDIS_URL"], queue_name=stack_env.queue_name, retry_intervals=(0,)
    )
    yield q
    q.shutdown()
