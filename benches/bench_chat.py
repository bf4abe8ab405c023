"""Offline chat latency on the demo data, through the real app (TestClient, no network),
against the bare retrieval call it is built on (the ratio shows the copilot's own overhead)."""

from __future__ import annotations

import resource
import statistics
import time

from benches._demo import percentile, seeded_demo

QUESTIONS = [
    "客户嫌贵怎么回？",
    "客户说今年预算紧怎么办",
    "竞品比我们便宜两成，怎么应对",
    "交付周期太长客户不满意",
    "tco怎么算",
    "客户要求再打折",
    "决策链太长怎么推进",
    "售后服务响应时间是多少",
    "零售连锁有成功案例吗",
    "第一次拜访怎么开场",
]


def main() -> None:
    from fastapi.testclient import TestClient

    from copilot.api.app import create_app

    services, logins = seeded_demo()
    token = next(x["token"] for x in logins if x["user_id"] == "u_rep_li")
    client = TestClient(create_app(services))
    headers = {"Authorization": f"Bearer {token}"}
    user = services.users.get("u_rep_li")
    teams = services.users.visible_teams(user)

    for q in QUESTIONS[:3]:  # warm-up
        client.post("/api/chat", json={"message": q}, headers=headers)
    chat_ms, search_ms = [], []
    cited = 0
    for _round in range(5):
        for q in QUESTIONS:
            t = time.perf_counter()
            services.kb.search(q, k=4, visible_teams=teams)
            search_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            r = client.post("/api/chat", json={"message": q}, headers=headers)
            chat_ms.append((time.perf_counter() - t) * 1000)
            cited += bool(r.json()["citations"])
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    p50, p95 = statistics.median(chat_ms), percentile(chat_ms, 0.95)
    s50 = statistics.median(search_ms)
    print(
        f"chat offline   n={len(chat_ms)}  p50 {p50:.1f} ms  p95 {p95:.1f} ms  answers with citations {cited}/{len(chat_ms)}"
    )
    print(f"kb.search only p50 {s50:.1f} ms  p95 {percentile(search_ms, 0.95):.1f} ms")
    print(f"ratio chat/search p50: {p50 / s50:.2f}x")
    print(f"peak RSS with models loaded: {rss_mb:.0f} MB")
