"""Suggestion jobs per second on Redis with 1 and then 2 `copilot worker` processes (PostgreSQL, demo data).

The demo is seeded once into a fresh PostgreSQL database (dropped at the end) and a fresh COPILOT_HOME;
jobs go to a queue of their own on the local Redis. For each worker count: start the workers, warm
them up (every worker loads the embedding model on its first job), then enqueue N
`copilot.worker.tasks.generate_suggestions` jobs (the demo customers, round robin) and time until all
have finished. Bounded: each phase stops waiting after BENCH_WORKERS_TIMEOUT seconds.

    python -m benches workers            BENCH_WORKERS_JOBS=300 (default)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

AS_OF = "2026-11-20"
POSTGRES = os.environ.get(
    "COPILOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS = os.environ.get("COPILOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
JOBS = int(os.environ.get("BENCH_WORKERS_JOBS", "300"))
TIMEOUT_S = float(os.environ.get("BENCH_WORKERS_TIMEOUT", "300"))
BIN = Path(sys.executable).parent


def _reachable() -> str | None:
    from redis import Redis
    from sqlalchemy import create_engine, text

    try:
        Redis.from_url(REDIS, socket_connect_timeout=1).ping()
    except Exception as exc:
        return f"Redis not reachable at {REDIS}: {type(exc).__name__}"
    engine = create_engine(POSTGRES)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return f"PostgreSQL not reachable at {POSTGRES}: {type(exc).__name__}"
    finally:
        engine.dispose()
    return None


@contextlib.contextmanager
def _fresh_database():
    from sqlalchemy import create_engine, text

    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    name = f"copilot_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def _workers(n: int, queue: str, env: dict[str, str], log_dir: Path):
    """``n`` separate `copilot worker` processes on ``queue``; stopped (SIGTERM, then SIGKILL) afterwards."""
    procs = []
    for i in range(n):
        log = (log_dir / f"worker{n}_{i}.log").open("wb")
        procs.append(
            (
                subprocess.Popen(
                    [str(BIN / "copilot"), "worker", "--queue", queue, "--nice", "0"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                ),
                log,
            )
        )
    try:
        yield [p for p, _ in procs]
    finally:
        for p, _ in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p, log in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            log.close()


def _wait_workers(queue, n: int, timeout: float) -> None:
    from rq import Worker

    deadline = time.monotonic() + timeout
    while Worker.count(queue=queue) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {Worker.count(queue=queue)} of {n} workers registered")
        time.sleep(0.2)


def _run_batch(jobs_queue, customers: list[str], count: int, timeout: float) -> tuple[int, int, float]:
    """Enqueue ``count`` jobs; (finished, failed, seconds until the last one ended or the timeout)."""
    from copilot.worker.tasks import generate_suggestions

    started = time.perf_counter()
    ids = [
        jobs_queue.enqueue(generate_suggestions, customers[i % len(customers)], AS_OF) for i in range(count)
    ]
    deadline = time.monotonic() + timeout
    while jobs_queue.pending and time.monotonic() < deadline:
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    states = [jobs_queue.status(i) for i in ids]
    return states.count("finished"), states.count("failed"), elapsed


def main() -> None:
    reason = _reachable()
    if reason:
        print(f"skipped: {reason}")
        return
    from redis import Redis
    from rq import Queue

    home = Path(tempfile.mkdtemp(prefix="copilot-bench-workers-"))
    queue_name = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        with _fresh_database() as db_url:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("COPILOT_", "OPENAI_"))}
            env.update(
                COPILOT_HOME=str(home),
                COPILOT_DATABASE_URL=db_url,
                COPILOT_REDIS_URL=REDIS,
                COPILOT_MODELS_DIR=os.environ.get("COPILOT_MODELS_DIR", str(Path(".cache/models").resolve())),
                HF_HUB_OFFLINE="1",
                TRANSFORMERS_OFFLINE="1",
                ANONYMIZED_TELEMETRY="False",
            )
            for name in [k for k in os.environ if k.startswith(("COPILOT_", "OPENAI_"))]:
                del os.environ[name]
            os.environ.update(env)
            from copilot.container import build_container
            from copilot.demo.seed import seed_if_empty
            from copilot.infra.jobs.redis_queue import RedisJobQueue

            services = build_container()
            t0 = time.perf_counter()
            seed_if_empty(services)
            customers = [c.id for c in services.crm.list_customers()]
            print(
                f"seed demo into PostgreSQL (CRM + KB): {time.perf_counter() - t0:.1f} s; {len(customers)} customers"
            )
            services.engine.dispose()

            results: dict[int, float] = {}
            for n in (1, 2):
                jobs = RedisJobQueue(REDIS, queue_name=queue_name, retries=0, job_timeout_s=600)
                with _workers(n, queue_name, env, home) as procs:
                    _wait_workers(Queue(queue_name, connection=Redis.from_url(REDIS)), n, timeout=60)
                    t = time.perf_counter()
                    # Every worker loads its models on its first job; every customer's suggestions get
                    # logged once, so both runs measure the same steady state (refreshing known ones).
                    warm_jobs = max(2 * n, len(customers))
                    done, failed, _ = _run_batch(jobs, customers, warm_jobs, TIMEOUT_S)
                    warm = time.perf_counter() - t
                    if failed or done < warm_jobs:
                        raise RuntimeError(
                            f"warm-up: {done} finished, {failed} failed (see {home}/worker*.log)"
                        )
                    done, failed, elapsed = _run_batch(jobs, customers, JOBS, TIMEOUT_S)
                    alive = sum(p.poll() is None for p in procs)
                rate = done / elapsed
                results[n] = rate
                print(
                    f"{n} worker{'s' if n > 1 else ''}: {done}/{JOBS} jobs finished ({failed} failed) in {elapsed:.1f} s"
                    f" = {rate:.1f} suggestion jobs/s  (warm-up {warm:.1f} s, {alive}/{n} alive at the end)"
                )
                jobs.queue.delete(delete_jobs=True)
                jobs.shutdown()
            print(
                f"ratio 2 workers / 1 worker: {results[2] / results[1]:.2f}x  (on {os.cpu_count()} cores, shared)"
            )
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
