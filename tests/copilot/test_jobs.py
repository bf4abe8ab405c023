"""The in-process job queue yields to webhook acknowledgements (copilot/infra/jobs/port.py PendingAcks)."""

from __future__ import annotations

import threading
import time

from copilot.infra.jobs.inprocess import InProcessJobQueue
from copilot.infra.jobs.port import PendingAcks, submit_many


def test_quiet_only_after_the_last_acknowledgement_and_a_calm_period():
    acks = PendingAcks()
    assert acks.wait_until_quiet(quiet=0.0, timeout=0.1)  # nothing owed: at once
    started = threading.Event()
    release = threading.Event()

    def owe():
        with acks.owed():
            started.set()
            release.wait(5)

    owing = threading.Thread(target=owe)
    owing.start()
    started.wait(5)
    assert not acks.wait_until_quiet(quiet=0.0, timeout=0.1)  # owed: waits, then gives up
    release.set()
    owing.join()
    t = time.monotonic()
    assert acks.wait_until_quiet(quiet=0.15, timeout=2)
    assert time.monotonic() - t >= 0.1  # the calm period after the last acknowledgement


def test_after_the_calm_wait_gives_up_a_job_still_starts_between_two_acknowledgements():
    acks = PendingAcks()
    owed = threading.Event()
    released = threading.Event()

    def owe_for(seconds: float) -> None:
        with acks.owed():
            owed.set()
            time.sleep(seconds)
            released.set()  # the acknowledgement is sent as the block ends

    owing = threading.Thread(target=owe_for, args=(0.16,))
    owing.start()
    owed.wait(5)
    t = time.monotonic()
    assert not acks.wait_until_quiet(quiet=0.05, timeout=0.1)  # no calm within 0.1 s ...
    assert released.is_set()  # ... so it returned once the acknowledgement was sent, not at 0.1 s
    assert time.monotonic() - t >= 0.12
    owing.join()


def test_a_job_submitted_while_an_acknowledgement_is_owed_starts_after_it(monkeypatch):
    acks = PendingAcks()
    monkeypatch.setattr("copilot.infra.jobs.inprocess.pending_acks", acks)
    queue = InProcessJobQueue(max_workers=2)
    events: list[str] = []
    with acks.owed():
        submit_many(queue, events.append, [("job 1",), ("job 2",)])
        time.sleep(0.2)
        events.append("acknowledged")

    assert queue.wait_idle(5)
    assert events[0] == "acknowledged" and sorted(events[1:]) == ["job 1", "job 2"]
    queue.shutdown()


def test_a_steady_stream_of_acknowledgements_cannot_starve_jobs(monkeypatch):
    acks = PendingAcks()
    acks.MAX_WAIT_S = 0.3
    monkeypatch.setattr("copilot.infra.jobs.inprocess.pending_acks", acks)
    queue = InProcessJobQueue(max_workers=1)
    done = threading.Event()
    with acks.owed():  # owed for the whole test
        queue.submit(done.set)
        assert done.wait(3)
    queue.shutdown()
