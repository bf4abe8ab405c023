"""The `copilot worker` process: RQ workers with heartbeats and leases on the Redis queue.

Delivery is at least once: when a worker dies, its heartbeats stop and after ``lease_s`` another
worker's maintenance pass puts the job back on the queue (see ``copilot.infra.jobs.redis_queue``).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from copilot.infra.jobs.port import DEFAULT_LEASE_S, DEFAULT_QUEUE
from copilot.infra.jobs.redis_queue import connect

logger = logging.getLogger(__name__)


def _worker_class(lease_s: int):
    """RQ's SimpleWorker (jobs run in the worker process, so loaded models and pools are reused),
    plus heartbeats while a job runs so that a dead worker's job is retried after ``lease_s``."""
    from rq import SimpleWorker
    from rq.worker import WorkerStatus

    class CopilotWorker(SimpleWorker):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            beat = max(1, lease_s // 3)
            kwargs.setdefault("job_monitoring_interval", beat)
            kwargs.setdefault("maintenance_interval", max(1, lease_s))
            # RQ blocks on the queue for worker_ttl - 15 s at a time. Keep that short: a stop signal
            # delivered to one of torch's threads is only handled once the main thread's wait returns.
            kwargs.setdefault("worker_ttl", 15 + max(1, min(lease_s, 5)))
            super().__init__(*args, **kwargs)

        def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
            return max(2, lease_s)

        def execute_job(self, job, queue) -> None:
            execution = self.prepare_execution(job)
            done = threading.Event()

            def beat() -> None:
                while not done.wait(self.job_monitoring_interval):
                    try:
                        self.maintain_heartbeats(job, execution)
                    except Exception as exc:  # a missed beat only shortens the lease
                        logger.warning("heartbeat for job %s failed: %s", job.id, type(exc).__name__)

            beater = threading.Thread(target=beat, name=f"rq-heartbeat-{job.id}", daemon=True)
            beater.start()
            try:
                self.perform_job(job, queue, execution)
            finally:
                done.set()
                beater.join()
            self.set_state(WorkerStatus.IDLE)

    return CopilotWorker


def run_workers(
    url: str,
    *,
    queue_name: str = DEFAULT_QUEUE,
    processes: int = 1,
    lease_s: int = DEFAULT_LEASE_S,
    burst: bool = False,
    logging_level: str = "INFO",
) -> None:
    """Run ``processes`` workers on ``queue_name`` until SIGTERM/SIGINT (or, with ``burst``, until the
    queue is empty). Several processes run under RQ's WorkerPool, which restarts any that die."""
    from rq.worker_pool import WorkerPool

    # Scale with processes, one torch/OpenMP thread each (unless OMP_NUM_THREADS says otherwise). Measured
    # on 2 busy cores: 1 worker ran chat jobs at 8.3/s with 1 thread and 2.8/s with 2; 2 workers × 2
    # threads at 1.7/s. Set before torch is imported, so forked workers inherit it.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    # Jobs that submit follow-up jobs (a voice message → its memo) use the queue this worker serves.
    os.environ["COPILOT_REDIS_QUEUE"] = queue_name
    worker_class = _worker_class(lease_s)
    connection = connect(url)
    if processes <= 1:
        worker = worker_class([queue_name], connection=connection)
        worker.work(burst=burst, with_scheduler=True, logging_level=logging_level)
        return
    pool = WorkerPool([queue_name], connection=connection, num_workers=processes, worker_class=worker_class)
    pool.start(burst=burst, logging_level=logging_level)
