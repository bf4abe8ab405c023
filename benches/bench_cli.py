"""CLI wall times (`copilot …` as a new process, as a person types it), with and without a running server.

Without a server `copilot kb search` / `copilot suggest` load the embedding model and the vector store
in the process (what every such command cost before the CLI could ask the server); with `copilot serve`
running on the same home they ask it (copilot.cli.local_server). `--help` and `outbox list` load no
model either way. The first column is the path before the CLI learned either (torch embeddings loaded in
the process, ``COPILOT_EMBED_BACKEND=torch``, no server). Prints the median of a few runs and the ratio
of the two current paths (onnxruntime without a server; with a server) to that one, measured in this run.

    python -m benches cli              COPILOT_BENCH_CLI_RUNS=5 for more runs
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from benches._demo import seeded_demo

COMMANDS = {
    "kb search": ["kb", "search", "报价", "--json"],
    "suggest": ["suggest", "--customer", "c_huaxing", "--json"],
    "--help": ["--help"],
    "outbox list": ["outbox", "list", "--json"],
}


def _copilot() -> str:
    return shutil.which("copilot", path=str(Path(sys.executable).parent)) or "copilot"


def _wall(args: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([_copilot(), *args], env=env, check=True, capture_output=True)  # noqa: S603
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _warm(url: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as r:  # noqa: S310 - loopback
                if b'"embedding":"loaded"' in r.read().replace(b" ", b""):
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError("copilot serve did not warm up")


def main() -> None:
    runs = int(os.environ.get("COPILOT_BENCH_CLI_RUNS", "3"))
    services, _ = seeded_demo()
    del services  # the CLI processes below build their own
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "COPILOT_RATE_LIMITS": "false"}
    env.pop("COPILOT_CLI_SERVER", None)
    torch_env = {**env, "COPILOT_EMBED_BACKEND": "torch"}
    before = {name: _wall(args, torch_env, runs) for name, args in COMMANDS.items()}
    without = {name: _wall(args, env, runs) for name, args in COMMANDS.items()}

    port = _free_port()
    server = subprocess.Popen(  # noqa: S603 -- our own console script
        [_copilot(), "serve", "--port", str(port), "--no-access-log"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        t0 = time.perf_counter()
        _warm(f"http://127.0.0.1:{port}")
        print(f"copilot serve ready with warm models: {time.perf_counter() - t0:.1f} s")
        with_server = {name: _wall(args, env, runs) for name, args in COMMANDS.items()}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)

    print(f"CLI wall time, median of {runs} runs (new process each):")
    print(
        f"  {'command':<12} {'before':>8} {'no server':>10} {'ratio':>6} {'server up':>10} {'ratio':>6}"
        "   (before: torch in-process; targets ≤ 4 s without a server, ≤ 1.5 s with one)"
    )
    for name in COMMANDS:
        t, a, b = before[name], without[name], with_server[name]
        print(f"  {name:<12} {t:>7.2f}s {a:>9.2f}s {a / t:>6.2f} {b:>9.2f}s {b / t:>6.2f}")
