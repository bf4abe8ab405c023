"""The one contract every JobQueue adapter keeps (copilot/infra/jobs/port.py), run by
tests/contracts/test_job_queue.py against InProcessJobQueue and RedisJobQueue with RQ workers.

A subclass provides the fixture ``env`` → ``JobQueueEnv``: a queue whose named tasks are those of
tests/contracts/job_tasks.py, ``runs()`` reading what the tasks recorded (in whichever process they
ran), and ``start_workers()`` letting the jobs queued so far run (a burst worker process on Redis;
nothing in-process, where the queue's own threads run them).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from copilot.infra.jobs.port import JobQueue, runs_remotely, submit_many
from tests.contracts.job_tasks import Run, VisitRef


@dataclass
class JobQueueEnv:
    queue: JobQueue
    runs: Callable[[], list[Run]]  # every task run so far, as recorded by the task itself
    start_workers: Callable[[], None]  # let the jobs queued so far run (no-op where the queue runs them)
    timeout: float = 30.0  # how long this deployment may take to run a few jobs (worker start included)


def by_task(runs: list[Run]) -> Counter[str]:
    return Counter(run.task for run in runs)


class JobQueueContract:
    def test_a_named_task_runs_once_with_its_plain_arguments(self, env: JobQueueEnv):
        visit = VisitRef("c_a1", "2026-10-08", tags=("上门拜访",))

        env.queue.submit("record", 42, "华星电子", visit, {"contacts": ["张总"]}, None)
        env.start_workers()

        assert env.queue.wait_idle(env.timeout)
        (run,) = env.runs()
        assert run.task == "record"
        assert run.args == (42, "华星电子", visit, {"contacts": ["张总"]}, None)
        assert isinstance(run.args[2], VisitRef)  # rebuilt as the dataclass, not a dict or a string

    def test_submit_returns_at_once_and_the_task_runs_elsewhere(self, env: JobQueueEnv):
        started = time.monotonic()
        env.queue.submit("sleep", 1.0, "slow")
        assert time.monotonic() - started < 0.5  # the caller does not wait for the task
        env.start_workers()

        assert env.queue.wait_idle(env.timeout)
        (run,) = env.runs()
        assert run.args == (1.0, "slow")
        assert (run.pid, run.thread) != (os.getpid(), threading.get_ident())
        # ``remote`` tells the truth: another process exactly when the queue says it runs remotely
        assert (run.pid != os.getpid()) is runs_remotely(env.queue)

    def test_submit_many_runs_every_job_once(self, env: JobQueueEnv):
        batch = [(i, f"客户{i}") for i in range(12)]

        submit_many(env.queue, "record", batch)
        env.start_workers()

        assert env.queue.wait_idle(env.timeout)
        runs = env.runs()  # read at once: wait_idle returns only after the effects are done
        assert sorted(run.args for run in runs) == batch
        assert by_task(runs) == {"record": 12}

    def test_a_failing_task_neither_raises_to_the_submitter_nor_stops_other_jobs(self, env: JobQueueEnv):
        env.queue.submit("fail", "a")  # no exception here, nor later on this thread
        for i in range(4):
            env.queue.submit("record", i)
        submit_many(env.queue, "fail", [("b",)])
        submit_many(env.queue, "record", [(10,), (11,)])
        env.start_workers()

        assert env.queue.wait_idle(env.timeout)
        runs = env.runs()
        assert sorted(run.args for run in runs if run.task == "record") == [
            (0,),
            (1,),
            (2,),
            (3,),
            (10,),
            (11,),
        ]
        failed = {run.args for run in runs if run.task == "fail"}
        assert failed == {("a",), ("b",)}  # each was attempted (a queue may retry it; see the subclasses)

    def test_an_unknown_task_name_fails_that_job_only(self, env: JobQueueEnv):
        env.queue.submit("no_such_task", 1)
        env.queue.submit("record", 2)
        env.start_workers()

        assert env.queue.wait_idle(env.timeout)
        assert [run.args for run in env.runs()] == [(2,)]

    def test_wait_idle_is_false_until_the_jobs_are_done_then_true(self, env: JobQueueEnv):
        env.queue.submit("sleep", 1.5, "x")
        env.start_workers()

        started = time.monotonic()
        assert env.queue.wait_idle(0.2) is False
        assert 0.15 <= time.monotonic() - started < 1.0  # it waited for the timeout, no longer
        assert env.runs() == []

        assert env.queue.wait_idle(env.timeout) is True
        assert [run.args for run in env.runs()] == [(1.5, "x")]

    def test_a_queue_with_nothing_submitted_is_idle_at_once(self, env: JobQueueEnv):
        started = time.monotonic()
        assert env.queue.wait_idle(5.0) is True
        assert time.monotonic() - started < 1.0

    def test_wait_idle_without_a_timeout_waits_for_the_jobs(self, env: JobQueueEnv):
        submit_many(env.queue, "sleep", [(0.3, i) for i in range(3)])
        env.start_workers()

        done: list[bool] = []
        waiter = threading.Thread(target=lambda: done.append(env.queue.wait_idle()), daemon=True)
        waiter.start()
        waiter.join(env.timeout)

        assert done == [True]
        assert sorted(run.args[1] for run in env.runs()) == [0, 1, 2]
