"""Shared by the benchmarks: a fresh temporary COPILOT_HOME with the demo company seeded."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def seeded_demo():
    """(services, demo logins) on a fresh home; models come from the shared models folder."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["COPILOT_HOME"] = tempfile.mkdtemp(prefix="copilot-bench-")
    os.environ.setdefault("COPILOT_MODELS_DIR", str(Path(".cache/models").resolve()))
    from copilot.container import build_container
    from copilot.demo.seed import seed_if_empty

    services = build_container()
    t0 = time.perf_counter()
    logins = seed_if_empty(services)
    print(f"seed demo (CRM + KB ingest + model load): {time.perf_counter() - t0:.1f} s")
    return services, logins
