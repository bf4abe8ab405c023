"""Offline suggest latency per customer on the demo data (as of the demo's 2026-11-20), cold (first
request after start: KB look-ups not cached yet) and warm, against the bare CRM read it starts from."""

from __future__ import annotations

import statistics
import time
from datetime import date

from benches._demo import percentile, seeded_demo

AS_OF = date(2026, 11, 20)
ROUNDS = 5


def main() -> None:

    services, _logins = seeded_demo()
    sg = services.suggester
    customers = [c.id for c in services.crm.list_customers()]
    services.kb.search("预热", k=1)  # load the embedding model outside the timings

    cold, warm, crm_ms = [], [], []
    n_suggestions = 0
    for round_ in range(ROUNDS + 1):
        for cid in customers:
            t = time.perf_counter()
            services.crm.get_customer(cid)
            crm_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            result = sg.plan_for_owner(cid, AS_OF, use_llm=False)
            (cold if round_ == 0 else warm).append((time.perf_counter() - t) * 1000)
            n_suggestions += len(result.suggestions) if round_ == 0 else 0
    print(f"customers {len(customers)}, suggestions {n_suggestions}")
    print(
        f"suggest offline cold  p50 {statistics.median(cold):.1f} ms  p95 {percentile(cold, 0.95):.1f} ms  (first request per customer)"
    )
    print(
        f"suggest offline warm  p50 {statistics.median(warm):.1f} ms  p95 {percentile(warm, 0.95):.1f} ms  (n={len(warm)})"
    )
    c50 = statistics.median(crm_ms)
    print(
        f"crm.get_customer only p50 {c50:.1f} ms; ratio warm suggest/crm read p50: {statistics.median(warm) / c50:.1f}x"
    )
