"""Server memory with both models in use, per embedding runtime: the real server (`copilot run`: demo
seeded, uvicorn) in a subprocess on 127.0.0.1, one chat, then one voice memo (a real Mandarin clip)
processed to the end; VmRSS read from /proc/PID/status after each step.

Two runs in one go: today's path (COPILOT_EMBED_BACKEND=torch, Whisper kept loaded) as the baseline,
then onnxruntime with Whisper released after MEM_WHISPER_IDLE_S (default 15) idle seconds: its RSS is
read again after the release, and a memo after the release (pays the model load) is timed against a
memo right after it (model warm).

    python -m benches server_memory
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import httpx

from benches.bench_soak import _free_port, _server, _wait_ready

IDLE_S = float(os.environ.get("MEM_WHISPER_IDLE_S", "15"))
REPO = Path(__file__).resolve().parents[1]
CLIPS = [
    REPO.parent / "shared" / "evaldata" / "asr" / "wav" / "fireredasr__BAC009S0764W0121.wav",
    REPO / "tests" / "data" / "audio" / "speech.m4a",
]


def vm_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def torch_loaded(pid: int) -> bool:
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text(errors="replace")


def _memo(client: httpx.Client, headers: dict, customer: str, clip: Path) -> float:
    start = time.perf_counter()
    with clip.open("rb") as fh:
        r = client.post(
            "/api/memos", headers=headers, files={"file": (clip.name, fh)}, data={"customer_id": customer}
        )
    r.raise_for_status()
    memo_id = r.json()["memo_id"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        memo = client.get(f"/api/memos/{memo_id}", headers=headers).json()
        if memo["status"] in ("done", "failed"):
            if memo["status"] != "done":
                raise RuntimeError(f"memo failed: {memo.get('error')}")
            return time.perf_counter() - start
        time.sleep(0.1)
    raise RuntimeError("memo not processed in time")


def run(backend: str, idle_s: float) -> dict[str, float | bool]:
    home = Path(tempfile.mkdtemp(prefix=f"copilot-bench-mem-{backend}-"))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"COPILOT_EMBED_BACKEND": backend, "COPILOT_WHISPER_IDLE_SECONDS": str(idle_s)}
    clip = next(c for c in CLIPS if c.is_file())
    out: dict[str, float | bool] = {}
    try:
        with _server(home, port, env) as proc:
            _wait_ready(proc, base, home)
            logins = {
                x["user_id"]: x["token"] for x in json.loads((home / "demo_logins.json").read_text("utf-8"))
            }
            rep = {"Authorization": f"Bearer {logins['u_rep_li']}"}
            with httpx.Client(base_url=base, timeout=120) as client:
                customer = client.get("/api/customers", headers=rep).json()["customers"][0]["id"]
                out["ready"] = vm_rss_mb(proc.pid)
                client.post("/api/chat", json={"message": "客户嫌贵怎么回？"}, headers=rep).raise_for_status()
                out["chat"] = vm_rss_mb(proc.pid)
                out["memo_first_s"] = _memo(client, rep, customer, clip)
                out["chat_memo"] = vm_rss_mb(proc.pid)
                out["torch_loaded"] = torch_loaded(proc.pid)
                if idle_s > 0:
                    time.sleep(idle_s + 3)
                    out["released"] = vm_rss_mb(proc.pid)
                    out["memo_after_release_s"] = _memo(client, rep, customer, clip)
                    out["memo_warm_s"] = _memo(client, rep, customer, clip)
                out["end"] = vm_rss_mb(proc.pid)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return out


def main() -> None:
    if not Path("/proc/self/status").is_file():
        print("skipped: needs /proc (Linux)")
        return
    results = {}
    for backend, idle in (("torch", 0.0), ("onnx", IDLE_S)):
        results[backend] = r = run(backend, idle)
        print(
            f"{backend:>5}: RSS ready {r['ready']:.0f} MB, after a chat {r['chat']:.0f} MB, after a chat and a memo "
            f"{r['chat_memo']:.0f} MB (first memo {r['memo_first_s']:.1f} s); torch loaded in the server: "
            f"{'yes' if r['torch_loaded'] else 'no'}"
        )
    t, o = results["torch"], results["onnx"]
    print(
        f"RSS after a chat and a memo: onnx {o['chat_memo']:.0f} MB vs torch {t['chat_memo']:.0f} MB = "
        f"{o['chat_memo'] / t['chat_memo']:.2f}× (target ≤ 1000 MB)"
    )
    if "released" in o:
        print(
            f"Whisper released after {IDLE_S:.0f} s idle: RSS {o['chat_memo']:.0f} → {o['released']:.0f} MB "
            f"({o['chat_memo'] - o['released']:.0f} MB back); memo after the release {o['memo_after_release_s']:.2f} s "
            f"vs warm {o['memo_warm_s']:.2f} s (+{o['memo_after_release_s'] - o['memo_warm_s']:.2f} s = the model load)"
        )


if __name__ == "__main__":
    main()
