"""Memory soak: the real server (`copilot run`: embedded defaults, demo seeded, uvicorn) in a subprocess on
127.0.0.1, driven by one client in a loop — chat, suggestions, KB search, customer reads — for
SOAK_SECONDS (default 600). The server's RSS is sampled every SOAK_SAMPLE_S (10) seconds.

Prints RSS at start (ready, before any load), after the warm-up, at the end and the maximum; the slope
after the warm-up (least squares, MB per minute); requests and errors; latency per operation in the
first and the last window after the warm-up, and their ratio (the baseline is the same run's start).

    SOAK_SECONDS=120 python -m benches soak
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from benches._demo import percentile

SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
SAMPLE_S = float(os.environ.get("SOAK_SAMPLE_S", "10"))
WARMUP_S = min(120.0, SECONDS / 4)
AS_OF = "2026-11-20"
BIN = Path(sys.executable).parent
QUESTIONS = ["客户嫌贵怎么回？", "竞品报价更低怎么办", "交付周期能缩短吗", "如何推进决策人拜访", "售后服务有哪些承诺",
             "预算不够怎么谈", "怎么介绍我们的技术优势", "客户说要再比较一下"]  # fmt: skip
SEARCHES = ["价格异议", "交付", "竞品对比", "服务承诺", "技术参数", "折扣政策", "案例", "付款方式"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return total / 2**20


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    if len(samples) < 2:
        return float("nan")
    ts, ms = [t for t, _ in samples], [m for _, m in samples]
    mt, mm = statistics.fmean(ts), statistics.fmean(ms)
    var = sum((t - mt) ** 2 for t in ts)
    return 60 * sum((t - mt) * (m - mm) for t, m in zip(ts, ms, strict=True)) / var if var else float("nan")


@contextlib.contextmanager
def _server(home: Path, port: int, extra_env: dict[str, str] | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COPILOT_", "OPENAI_"))}
    env.update(
        COPILOT_HOME=str(home),
        COPILOT_MODELS_DIR=os.environ.get("COPILOT_MODELS_DIR", str(Path(".cache/models").resolve())),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        ANONYMIZED_TELEMETRY="False",
        NO_PROXY="127.0.0.1,localhost",
        COPILOT_RATE_LIMITS="false",  # a soak test is one user far faster than any person
    )
    env.update(extra_env or {})
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(BIN / "copilot"), "run", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _wait_ready(proc, base: str, home: Path, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {(home / 'server.log').read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError("server not ready in time")


class Sampler(threading.Thread):
    def __init__(self, pid: int, start: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.start_t = pid, start
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while True:
            self.samples.append((time.monotonic() - self.start_t, rss_mb(self.pid)))
            if self.stop.wait(SAMPLE_S):
                return


def _operations(rep: dict, mgr: dict, rep_customers: list[str], team_customers: list[str]):
    """An endless, varied sequence of (name, request kwargs)."""
    for n in itertools.count():
        cid = rep_customers[n % len(rep_customers)]
        yield "chat", {"method": "POST", "url": "/api/chat", "headers": rep,
                       "json": {"message": f"{QUESTIONS[n % len(QUESTIONS)]}（第{n}次）", "customer_id": cid}}  # fmt: skip
        yield "suggestions", {"method": "GET", "url": f"/api/customers/{cid}/suggestions", "headers": rep,
                              "params": {"as_of": AS_OF}}  # fmt: skip
        yield "kb_search", {"method": "GET", "url": "/api/kb/search", "headers": rep,
                            "params": {"q": f"{SEARCHES[n % len(SEARCHES)]} {n % 97}", "k": 5}}  # fmt: skip
        yield "customers", {"method": "GET", "url": "/api/customers", "headers": mgr}
        yield "customer", {"method": "GET", "url": f"/api/customers/{team_customers[n % len(team_customers)]}",
                           "headers": mgr}  # fmt: skip


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="copilot-bench-soak-"))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        with _server(home, port) as proc:
            t0 = time.perf_counter()
            _wait_ready(proc, base, home)
            print(
                f"server ready (demo seeded, `copilot run`) in {time.perf_counter() - t0:.1f} s; pid {proc.pid}"
            )
            logins = {
                x["user_id"]: x["token"] for x in json.loads((home / "demo_logins.json").read_text("utf-8"))
            }
            rep = {"Authorization": f"Bearer {logins['u_rep_li']}"}
            mgr = {"Authorization": f"Bearer {logins['u_mgr_chen']}"}
            with httpx.Client(base_url=base, timeout=60) as client:
                rep_customers = [
                    c["id"] for c in client.get("/api/customers", headers=rep).json()["customers"]
                ]
                team_customers = [
                    c["id"] for c in client.get("/api/customers", headers=mgr).json()["customers"]
                ]
                started = time.monotonic()
                sampler = Sampler(proc.pid, started)
                sampler.start()
                latencies: dict[str, list[tuple[float, float]]] = {}
                errors: dict[str, int] = {}
                for name, request in _operations(rep, mgr, rep_customers, team_customers):
                    now = time.monotonic() - started
                    if now >= SECONDS:
                        break
                    t = time.perf_counter()
                    try:
                        status = client.request(**request).status_code
                    except httpx.HTTPError as exc:
                        status = type(exc).__name__
                    latencies.setdefault(name, []).append((now, (time.perf_counter() - t) * 1000))
                    if status != 200:
                        errors[f"{name} {status}"] = errors.get(f"{name} {status}", 0) + 1
                    if proc.poll() is not None:
                        raise RuntimeError("the server died during the soak")
                sampler.stop.set()
                sampler.join()
        _report(sampler.samples, latencies, errors)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _report(samples, latencies, errors) -> None:
    total = sum(len(v) for v in latencies.values())
    elapsed = max(t for v in latencies.values() for t, _ in v)
    print(
        f"soak {SECONDS:.0f} s: {total} requests ({total / elapsed:.1f}/s), errors {sum(errors.values())} {errors or ''}"
    )
    after = [(t, m) for t, m in samples if t >= WARMUP_S]
    warm = after[0][1] if after else samples[-1][1]
    print(
        f"RSS start {samples[0][1]:.0f} MB (ready, before load); after {WARMUP_S:.0f} s warm-up {warm:.0f} MB; "
        f"end {samples[-1][1]:.0f} MB; max {max(m for _, m in samples):.0f} MB  ({len(samples)} samples)"
    )
    half = after[len(after) // 2 :]
    print(
        f"RSS slope after warm-up: {slope_mb_per_min(after):+.2f} MB/min (last half {slope_mb_per_min(half):+.2f});"
        f" end / after warm-up: {samples[-1][1] / warm:.3f}x"
    )
    per_minute = [m for t, m in samples if int(t) % 60 < SAMPLE_S]
    print("RSS each minute (MB): " + " ".join(f"{m:.0f}" for m in per_minute))
    window = max(60.0, (SECONDS - WARMUP_S) / 5)
    for name, values in latencies.items():
        first = [ms for t, ms in values if WARMUP_S <= t < WARMUP_S + window]
        last = [ms for t, ms in values if t >= SECONDS - window]
        if not first or not last:
            continue
        print(
            f"  {name:<11} n={len(values):<5} p50 {statistics.median(first):6.1f} → {statistics.median(last):6.1f} ms"
            f"  p95 {percentile(first, 0.95):6.1f} → {percentile(last, 0.95):6.1f} ms"
            f"  (last/first p50 {statistics.median(last) / statistics.median(first):.2f}x)"
        )


if __name__ == "__main__":
    main()
