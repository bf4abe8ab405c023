"""The LLM paths against a real OpenAI-compatible engine (``OPENAI_BASE_URL``; e.g. ``copilot llm serve``):
the 10 demo chat questions through the real app — share answered in mode ``llm``, p50/p95 latency,
shown citations that verify — then suggestions for the demo customers, and fallbacks by path and reason
as /metrics counts them. Skipped (with the reason) when no engine is configured.

    copilot llm serve &                                        # or any endpoint
    OPENAI_BASE_URL=http://127.0.0.1:18080/v1 OPENAI_API_KEY=local \\
      COPILOT_LLM_CHAT_TIMEOUT_S=120 python -m benches llm
"""

from __future__ import annotations

import os
import statistics
import time

from benches._demo import percentile, seeded_demo
from benches.bench_chat import QUESTIONS


def _fallbacks(metrics) -> dict[str, float]:
    out = {}
    for family in metrics.registry.collect():
        if family.name in ("copilot_llm_fallbacks", "copilot_llm_answers"):
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.value:
                    labels = sample.labels
                    key = f"{labels['path']}:{labels.get('reason') or labels.get('outcome')}"
                    out[f"{family.name.removeprefix('copilot_llm_')}[{key}]"] = sample.value
    return out


def main() -> None:
    if not (os.environ.get("OPENAI_BASE_URL") and os.environ.get("OPENAI_API_KEY")):
        print(
            "skipped: set OPENAI_BASE_URL and OPENAI_API_KEY (e.g. `copilot llm serve`, then …/v1 and any key)"
        )
        return
    from fastapi.testclient import TestClient

    from copilot.agent.citations import verify
    from copilot.api.app import create_app
    from copilot.domain import Citation

    services, logins = seeded_demo()
    token = next(x["token"] for x in logins if x["user_id"] == "u_rep_li")
    client = TestClient(create_app(services))
    headers = {"Authorization": f"Bearer {token}"}
    kb = services.kb

    def kb_text(kind: str, ref: str, locator: str) -> str | None:
        found = kb.get_chunk(ref) if kind == "kb" else None
        return found[0].text if found and found[0].locator.short() == locator else None

    latencies, modes, shown, verified = [], [], 0, 0
    for q in QUESTIONS:
        t = time.perf_counter()
        body = client.post("/api/chat", json={"message": q}, headers=headers).json()
        latencies.append(time.perf_counter() - t)
        modes.append(body["mode"])
        for c in body["citations"]:
            shown += 1
            verified += verify(Citation(**c), kb_text)
        print(f"  {latencies[-1]:6.1f} s  {body['mode']:7}  {q}  {body.get('note') or ''}", flush=True)
    accepted = modes.count("llm")
    print(
        f"chat via {services.settings.llm.model}: accepted {accepted}/{len(modes)} in mode llm; "
        f"latency p50 {statistics.median(latencies):.1f} s, p95 {percentile(latencies, 0.95):.1f} s; "
        f"shown citations verified {verified}/{shown}"
    )

    sg = services.suggester
    as_of = _as_of()
    resolver = sg.resolver(as_of)
    times, llm_plans, bad = [], 0, 0
    for customer in services.crm.list_customers()[:4]:
        t = time.perf_counter()
        result = sg.plan_for_owner(customer.id, as_of)
        times.append(time.perf_counter() - t)
        llm_plans += result.mode == "llm"
        bad += sum(not verify(c, resolver) for s in result.suggestions for c in s.citations)
        print(f"  {times[-1]:6.1f} s  {result.mode:7}  {customer.id}  {result.note or ''}", flush=True)
    print(
        f"suggest: {llm_plans}/{len(times)} plans in mode llm; p50 {statistics.median(times):.1f} s; "
        f"unverifiable shown citations {bad}"
    )
    for key, value in sorted(_fallbacks(services.metrics).items()):
        print(f"  {key} = {value:g}")


def _as_of():
    from datetime import date

    return date.fromisoformat(os.environ.get("COPILOT_BENCH_AS_OF", "2026-11-20"))
