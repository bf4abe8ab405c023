"""Webhook acknowledgement under load: 200 concurrent signed WeCom text callbacks against the real app
served by uvicorn on 127.0.0.1, replies going to a fake WeCom server on 127.0.0.1 (loopback only).

What is measured is the platform's view: the time until the empty 200 (the answer itself is a job).
The conversation is a fixed one-citation answer so that the figure is the webhook path, not the LLM.
Bounded: N posts, at most TIME_LIMIT_S for the whole run.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time

from benches._demo import percentile

N = 200
TIME_LIMIT_S = 60.0
CORP_ID = "wwbench0001"
AGENT_ID = "1000002"
TOKEN = "benchToken"  # noqa: S105 -- a bench value
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
SECRET = "bench-secret"  # noqa: S105 -- a bench value


class _FixedConversation:
    def reply(self, user, message, *, customer_id=None):
        from copilot.domain import ChatAnswer, Citation

        citation = Citation("kb", "chunk-1", "§1", "话术.md", "先认同客户", "依据《价格异议话术》§1")
        return ChatAnswer(answer="先认同客户对成本的关注。", citations=(citation,))


def _build(fake_url: str):
    os.environ["COPILOT_HOME"] = tempfile.mkdtemp(prefix="copilot-bench-webhooks-")
    os.environ.update(
        {
            "COPILOT_WECOM_CORP_ID": CORP_ID,
            "COPILOT_WECOM_AGENT_ID": AGENT_ID,
            "COPILOT_WECOM_SECRET": SECRET,
            "COPILOT_WECOM_TOKEN": TOKEN,
            "COPILOT_WECOM_AES_KEY": AES_KEY,
            "COPILOT_WECOM_API_BASE": fake_url,
        }
    )
    from copilot.services import build_services
    from copilot.settings import Settings

    services = build_services(Settings())
    services.users.upsert_user(
        {"id": "rep_bench", "name": "压测", "role": "rep", "team_id": "t_bench", "wecom_userid": "bench"}
    )
    services.__dict__["conversation"] = _FixedConversation()
    return services


def _bodies(n: int) -> list[tuple[dict[str, str], bytes]]:
    from connectors.channels.crypto import MessageCrypto
    from connectors.channels.wecom import build_envelope, build_xml

    crypto = MessageCrypto(TOKEN, AES_KEY, CORP_ID)
    out = []
    for i in range(n):
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
        params = {"msg_signature": enc.signature, "timestamp": enc.timestamp, "nonce": enc.nonce}
        out.append((params, build_envelope(to_user=CORP_ID, agent_id=AGENT_ID, encrypt=enc.encrypt).encode()))
    return out


async def _post(host: str, port: int, target: str, body: bytes) -> tuple[float, int]:
    """One raw HTTP/1.1 POST on a fresh connection (as a platform would): (ms until the answer, status)."""
    t = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        f"POST {target} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: text/xml\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    raw = await reader.read()  # the server closes after the answer (Connection: close)
    elapsed = (time.perf_counter() - t) * 1000
    writer.close()
    status = int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else 0
    return elapsed, status


async def _fire(base_url: str, requests: list[tuple[str, bytes]]) -> tuple[list[float], list[int], float]:
    host, port = base_url.removeprefix("http://").split(":")
    start = time.perf_counter()
    results = await asyncio.wait_for(
        asyncio.gather(*(_post(host, int(port), target, body) for target, body in requests)),
        timeout=TIME_LIMIT_S,
    )
    wall = time.perf_counter() - start
    return [ms for ms, _ in results], [code for _, code in results], wall


def _load(base_url: str, requests: list[tuple[str, bytes]], out) -> None:
    """In a separate process, so that the load generator does not share the server's GIL."""
    out.put(asyncio.run(_fire(base_url, requests)))


def _run_load(base_url: str, bodies: list[tuple[dict[str, str], bytes]]):
    import multiprocessing
    from urllib.parse import urlencode

    requests = [(f"/channels/wecom/callback?{urlencode(params)}", body) for params, body in bodies]
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_load, args=(base_url, requests, out), daemon=True)
    proc.start()
    try:
        return out.get(timeout=TIME_LIMIT_S + 30)
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()


def main() -> None:
    import httpx

    from copilot.api.app import create_app
    from copilot.channels_service import jobs_for
    from tests.fakes.fake_wecom import FakeWeCom
    from tests.support.servers import serve_in_thread

    with FakeWeCom.running(corp_id=CORP_ID, secret=SECRET) as fake:
        services = _build(fake.url)
        bodies = _bodies(N)
        with serve_in_thread(create_app(services), backlog=2048) as base_url:
            httpx.get(f"{base_url}/healthz", timeout=10)  # warm-up
            ack_ms, codes, wall = _run_load(base_url, bodies)
            jobs = jobs_for(services)
            t = time.perf_counter()
            idle = jobs.wait_idle(TIME_LIMIT_S)
            drain = time.perf_counter() - t
        jobs.shutdown()
    ok = sum(code == 200 for code in codes)
    print(f"wecom callbacks n={N} concurrent  acked 200: {ok}/{N}")
    print(
        f"ack latency p50 {statistics.median(ack_ms):.1f} ms  p99 {percentile(ack_ms, 0.99):.1f} ms  "
        f"max {max(ack_ms):.1f} ms  (target p99 ≤ 50 ms)"
    )
    print(f"ack throughput {N / wall:.0f} req/s  (all {N} acked in {wall * 1000:.0f} ms)")
    print(
        f"replies at the fake WeCom: {len(fake.sent)}/{N}  "
        f"(jobs drained {'in' if idle else 'NOT within'} {drain:.1f} s after the last ack)"
    )


if __name__ == "__main__":
    main()
