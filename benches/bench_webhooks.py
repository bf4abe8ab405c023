"""Webhook acknowledgement under load: signed, encrypted WeCom text callbacks against `copilot serve`
(1, 2 and 3 API processes), replies going to a fake WeCom server — every party a separate process on
127.0.0.1, as in production.

What is measured is the platform's view: the time until the empty 200 (the answer itself is a job that
runs afterwards, competing for the same two cores). Two loads per deployment:

* burst: N posts at the same instant, each on a fresh connection (a platform's retry storm), three
  times, each on an idle deployment (the replies to earlier posts sent), p99 over all three;
* steady: RATE posts per second for STEADY_S seconds, scheduled open-loop (latency counts from the
  scheduled send time, so a slow server cannot hide its queueing).

The baseline, measured in the same run under the same loads, is a hello-world ASGI app on uvicorn:
the floor for any Python webhook on this machine. Bounded: at most TIME_LIMIT_S per load.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from benches._demo import percentile

BURST = 200
BURST_ROUNDS = 3
WARMUP = 40
SETTLE_S = 60.0
RATE = 200
STEADY_S = 10
TIME_LIMIT_S = 60.0
CORP_ID = "wwbench0001"
AGENT_ID = "1000002"
TOKEN = "benchToken"  # noqa: S105 -- a bench value
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
SECRET = "bench-secret"  # noqa: S105 -- a bench value
BIN = Path(sys.executable).parent
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")  # a database of its own
DEPLOYMENTS = (  # (label, API processes, Redis queue + `copilot worker` processes)
    ("1 API", 1, False),
    ("2 API+Redis", 2, True),
    ("3 API+Redis", 3, True),
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _requests(n: int, offset: int) -> list[tuple[str, bytes]]:
    from connectors.channels.crypto import MessageCrypto
    from connectors.channels.wecom import build_envelope, build_xml

    crypto = MessageCrypto(TOKEN, AES_KEY, CORP_ID)
    out = []
    for i in range(offset, offset + n):
        xml = build_xml(
            {
                "ToUserName": CORP_ID,
                "FromUserName": "bench",
                "CreateTime": int(time.time()),
                "MsgType": "text",
                "Content": f"客户嫌贵怎么回？#{i}",
                "MsgId": str(8_000_000_000_000_000_000 + i),
                "AgentID": int(AGENT_ID),
            }
        )
        enc = crypto.encrypt(xml)
        query = urlencode({"msg_signature": enc.signature, "timestamp": enc.timestamp, "nonce": enc.nonce})
        body = build_envelope(to_user=CORP_ID, agent_id=AGENT_ID, encrypt=enc.encrypt).encode()
        out.append((f"/channels/wecom/callback?{query}", body))
    return out


# -- the load generator (its own process, so it does not share a GIL with anything measured) ------------


class _Exchange(asyncio.Protocol):
    """One request on a fresh connection; ``done`` resolves to the status code once the server closes."""

    def __init__(self, request: bytes, done: asyncio.Future) -> None:
        self.request, self.done, self.head = request, done, b""

    def connection_made(self, transport) -> None:
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if len(self.head) < 12:
            self.head += data

    def connection_lost(self, exc) -> None:
        if not self.done.done():
            ok = self.head.startswith(b"HTTP/1.1 ")
            self.done.set_result(int(self.head[9:12]) if ok else 0)


async def _post(port: int, target: str, body: bytes, at: float) -> tuple[float, int]:
    """One HTTP/1.1 POST on a fresh connection, sent at ``at``: (ms from ``at`` to the answer, status).
    Protocol-level, not streams: the generator's own cost per request is part of every figure."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, at - time.perf_counter()))
    request = (
        f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/xml\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    done = loop.create_future()
    transport, _ = await loop.create_connection(lambda: _Exchange(request, done), "127.0.0.1", port)
    status = await done
    elapsed = (time.perf_counter() - at) * 1000
    transport.close()
    return elapsed, status


async def _fire(port: int, requests: list[tuple[str, bytes]], rate: float | None):
    start = time.perf_counter() + 0.05
    at = [start if rate is None else start + i / rate for i in range(len(requests))]
    results = await asyncio.wait_for(
        asyncio.gather(*(_post(port, t, b, a) for (t, b), a in zip(requests, at, strict=True))),
        timeout=TIME_LIMIT_S,
    )
    return [ms for ms, _ in results], [code for _, code in results]


def _load_process(port: int, requests, rate, out) -> None:
    try:  # the lightest event loop available: the generator must not be what is measured
        import uvloop

        out.put(uvloop.run(_fire(port, requests, rate)))
    except ImportError:
        out.put(asyncio.run(_fire(port, requests, rate)))


def _load(port: int, requests: list[tuple[str, bytes]], rate: float | None) -> tuple[list[float], list[int]]:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_load_process, args=(port, requests, rate, out), daemon=True)
    proc.start()
    try:
        return out.get(timeout=TIME_LIMIT_S + 30)
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()


# -- the parties ---------------------------------------------------------------------------------------

_FAKE = """
import sys, threading
from tests.fakes.fake_wecom import FakeWeCom
with FakeWeCom.running(corp_id=sys.argv[1], secret=sys.argv[2]) as fake:
    print(fake.url, flush=True)
    sys.stdin.read()
"""

_FLOOR = """
import sys, uvicorn
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), workers=None, log_level="warning", access_log=False)
"""


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=1)
            return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _redis_up() -> bool:
    from redis import Redis
    from redis.exceptions import RedisError

    try:
        Redis.from_url(REDIS_URL, socket_connect_timeout=1).flushdb()
    except RedisError:
        return False
    return True


def _env(home: str, fake_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COPILOT_", "OPENAI_"))}
    env.update(
        COPILOT_HOME=home,
        COPILOT_MODELS_DIR=str(Path(".cache/models").resolve()),
        COPILOT_WECOM_CORP_ID=CORP_ID,
        COPILOT_WECOM_AGENT_ID=AGENT_ID,
        COPILOT_WECOM_SECRET=SECRET,
        COPILOT_WECOM_TOKEN=TOKEN,
        COPILOT_WECOM_AES_KEY=AES_KEY,
        COPILOT_WECOM_API_BASE=fake_url,
        HF_HUB_OFFLINE="1",
        NO_PROXY="127.0.0.1,localhost",
    )
    return env


def _answered(home: str) -> int:
    import sqlite3

    with contextlib.closing(sqlite3.connect(Path(home) / "copilot.db")) as db:
        return db.execute("SELECT count(*) FROM channel_messages WHERE status != 'received'").fetchone()[0]


def _figures(label: str, ms: list[float], codes: list[int]) -> dict:
    ok = sum(c == 200 for c in codes)
    row = {"load": label, "ok": ok, "n": len(codes), "p50": statistics.median(ms),
           "p99": percentile(ms, 0.99), "max": max(ms)}  # fmt: skip
    print(f"  {label:<28} acked {ok}/{len(codes)}  p50 {row['p50']:6.1f} ms  p99 {row['p99']:6.1f} ms  "
          f"max {row['max']:6.1f} ms", flush=True)  # fmt: skip
    return row


def _settle(home: str | None, expected: int) -> None:
    """Wait (bounded) until the replies owed so far are sent: each load starts on an idle deployment."""
    deadline = time.perf_counter() + SETTLE_S
    while home is not None and _answered(home) < expected and time.perf_counter() < deadline:
        time.sleep(0.2)
    time.sleep(1)


def _measure(port: int, offset: int, home: str | None = None) -> list[dict]:
    """Warm up (each API process builds its channel and imports its code paths on first use: a paced
    stream, then small bursts so that every process gets some), then BURST_ROUNDS bursts (pooled) and
    the steady load."""
    sent = 0
    warm = _requests(WARMUP, offset)
    _load(port, warm, WARMUP / 2)
    for i in range(3):
        _load(port, _requests(WARMUP // 2, offset + WARMUP * (i + 1)), None)
    sent += WARMUP + 3 * (WARMUP // 2)
    offset += WARMUP * 4
    ms: list[float] = []
    codes: list[int] = []
    for _ in range(BURST_ROUNDS):
        _settle(home, sent)
        burst_ms, burst_codes = _load(port, _requests(BURST, offset), None)
        ms += burst_ms
        codes += burst_codes
        offset += BURST
        sent += BURST
    rows = [_figures(f"burst {BURST} at once ×{BURST_ROUNDS}", ms, codes)]
    _settle(home, sent)
    steady = _requests(RATE * STEADY_S, offset)
    rows.append(_figures(f"steady {RATE}/s for {STEADY_S} s", *_load(port, steady, RATE)))
    return rows


def main() -> None:
    repo = Path(__file__).resolve().parents[1]
    fake = subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", _FAKE, CORP_ID, SECRET], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        cwd=repo, text=True,
    )  # fmt: skip
    fake_url = fake.stdout.readline().strip()
    results: dict[str, list[dict]] = {}
    try:
        port = _free_port()
        floor = subprocess.Popen([sys.executable, "-c", _FLOOR, str(port)], cwd=repo)  # noqa: S603
        _wait_http(f"http://127.0.0.1:{port}/", floor)
        print("baseline: hello-world ASGI app on uvicorn (1 process)", flush=True)
        results["floor"] = _measure(port, 0)
        _stop(floor)

        for label, workers, redis in DEPLOYMENTS:
            if redis and not _redis_up():
                print(f"{label}: skipped, Redis not reachable at {REDIS_URL}")
                continue
            home = tempfile.mkdtemp(prefix="copilot-bench-webhooks-")
            env = _env(home, fake_url) | ({"COPILOT_REDIS_URL": REDIS_URL} if redis else {})
            crm = Path(home) / "bench_crm.json"
            crm.write_text(json.dumps({"teams": [{"id": "t_bench", "name": "压测"}], "users": [
                {"id": "rep_bench", "name": "压测", "role": "rep", "team_id": "t_bench", "wecom_userid": "bench"}],
                "customers": []}, ensure_ascii=False))  # fmt: skip
            subprocess.run([BIN / "copilot", "crm", "import", str(crm)], env=env, check=True,  # noqa: S603
                           capture_output=True, cwd=repo)  # fmt: skip
            port = _free_port()
            quiet = {"env": env, "cwd": repo, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
            procs = [subprocess.Popen(  # noqa: S603
                [BIN / "copilot", "serve", "--port", str(port), "--workers", str(workers), "--no-access-log"],
                **quiet)]  # fmt: skip
            if redis:
                procs.append(subprocess.Popen([BIN / "copilot", "worker"], **quiet))  # noqa: S603
            try:
                _wait_http(f"http://127.0.0.1:{port}/healthz", procs[0])
                jobs = "Redis queue, 1 `copilot worker`" if redis else "in-process reply jobs"
                print(f"{label}: copilot serve --workers {workers} (SQLite, {jobs})", flush=True)
                results[label] = rows = _measure(port, 1_000_000 * (len(results) + 1), home)
                total = sum(r["n"] for r in rows) + WARMUP + 3 * (WARMUP // 2)
                t = time.perf_counter()
                while _answered(home) < total and time.perf_counter() - t < 180:
                    time.sleep(0.5)
                print(f"  replies finished: {_answered(home)}/{total} "
                      f"({time.perf_counter() - t:.1f} s after the last ack)", flush=True)  # fmt: skip
            finally:
                for proc in procs:
                    _stop(proc)
    finally:
        fake.stdin.close()
        _stop(fake)

    labels = [label for label, _, _ in DEPLOYMENTS if label in results]
    print("\nack p99 in ms (ratio to the hello-world floor); target ≤ 50 ms")
    print(f"  {'load':<22}{'floor':>8}" + "".join(f"{label:>22}" for label in labels))
    for i, row in enumerate(results["floor"]):
        cells = "".join(
            f"{results[label][i]['p99']:>12.1f} ({results[label][i]['p99'] / row['p99']:>5.1f}×)"
            for label in labels
        )
        print(f"  {row['load']:<22}{row['p99']:>8.1f}{cells}")


if __name__ == "__main__":
    main()
