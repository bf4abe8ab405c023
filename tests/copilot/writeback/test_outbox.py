"""Outbox delivery: outages, Retry-After, permanent failures, restarts, leases, the outbox commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from copilot.features.writeback import audit, commands, outbox
from copilot.features.writeback.apply import apply_change
from copilot.storage.db import make_engine

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
FAST = outbox.RetryPolicy(base_delay_s=1.0, max_delay_s=60.0, max_attempts=50)


def _task(customer_id: str, i: int) -> dict:
    return {"op": "create_task", "fields": {"customer_id": customer_id, "title": f"任务{i}"}}


def test_crm_down_then_back_delivers_every_write_exactly_once(services, remote):
    fake, crm, customer, count = remote
    fake.faults.down = True
    for i in range(100):
        result = apply_change(
            services.engine,
            crm,
            user_id="rep_a",
            change=_task(customer, i),
            evidence_ids=[f"e{i}"],
            key=f"k{i}",
            now=T0,
            policy=FAST,
        )
        assert result.status == "pending" and "暂时不可用" in result.message
    report = outbox.deliver_pending(services.engine, crm, T0 + timedelta(minutes=5), policy=FAST)
    assert report.retrying == 100 and count() == 0
    fake.faults.down = False
    delivered = failed = 0
    for hour in range(1, 6):  # a slow, loaded machine may time a few calls out: they retry next pass
        report = outbox.deliver_pending(services.engine, crm, T0 + timedelta(hours=hour), policy=FAST)
        delivered, failed = delivered + report.delivered, failed + report.failed
        if delivered == 100:
            break
    assert (delivered, failed) == (100, 0)
    assert count() == 100  # 0 lost, 0 duplicate
    assert len([e for e in audit.entries(services.engine) if e["action"] == "crm.create_task"]) == 100
    assert outbox.deliver_pending(services.engine, crm, T0 + timedelta(hours=9), policy=FAST).delivered == 0


def test_429_waits_for_retry_after(services, remote):
    fake, crm, customer, count = remote
    fake.faults.fail_next(1, status=429, retry_after="30")
    result = apply_change(
        services.engine,
        crm,
        user_id="rep_a",
        change=_task(customer, 1),
        evidence_ids=[],
        key="k",
        now=T0,
        policy=FAST,
    )
    row = outbox.get(services.engine, "k")
    assert result.status == "pending" and row["next_attempt_at"] == (T0 + timedelta(seconds=30)).isoformat()
    calls = len(fake.requests)
    assert (
        outbox.deliver_pending(services.engine, crm, T0 + timedelta(seconds=29), policy=FAST).delivered == 0
    )
    assert len(fake.requests) == calls  # not even tried before Retry-After
    assert (
        outbox.deliver_pending(services.engine, crm, T0 + timedelta(seconds=30), policy=FAST).delivered == 1
    )
    assert count() == 1


def test_permanent_rejection_fails_with_the_crms_message_in_chinese(services, sf):
    fake, crm, acct, opp = sf
    told = []
    change = {"op": "create_task", "fields": {"customer_id": "001999999999999AAA", "title": "x"}}
    result = apply_change(
        services.engine,
        crm,
        user_id="rep_a",
        change=change,
        evidence_ids=[],
        key="bad",
        on_failed=told.append,
    )
    assert result.status == "failed"
    assert result.message.startswith("CRM 拒绝了这次写入：") and "incorrect type" in result.message
    assert [r["user_id"] for r in told] == ["rep_a"]
    assert (
        outbox.deliver_pending(services.engine, crm, outbox.utcnow() + timedelta(days=1)).failed == 0
    )  # not retried
    assert commands.list_outbox(services.engine)["items"][0]["status"] == "failed"  # not dropped


def test_backoff_grows_and_attempts_are_capped(services, sf):
    fake, crm, acct, _ = sf
    policy = outbox.RetryPolicy(base_delay_s=10, max_delay_s=1000, max_attempts=3)
    fake.faults.down = True
    apply_change(
        services.engine,
        crm,
        user_id="rep_a",
        change=_task(acct, 1),
        evidence_ids=[],
        key="k",
        now=T0,
        policy=policy,
    )
    first = datetime.fromisoformat(outbox.get(services.engine, "k")["next_attempt_at"])
    assert T0 + timedelta(seconds=5) <= first <= T0 + timedelta(seconds=10)
    outbox.deliver_pending(services.engine, crm, first, policy=policy)
    second = datetime.fromisoformat(outbox.get(services.engine, "k")["next_attempt_at"])
    assert first + timedelta(seconds=10) <= second <= first + timedelta(seconds=20)
    outbox.deliver_pending(services.engine, crm, second, policy=policy)
    row = outbox.get(services.engine, "k")
    assert row["status"] == "failed" and row["attempts"] == 3 and "已重试 3 次" in row["last_error"]


def test_pending_rows_survive_a_restart(services, sf, tmp_path):
    fake, crm, acct, _ = sf
    fake.faults.down = True
    apply_change(
        services.engine, crm, user_id="rep_a", change=_task(acct, 1), evidence_ids=[], key="k", now=T0
    )
    services.engine.dispose()
    fake.faults.down = False
    engine = make_engine(services.settings.resolved_database_url)  # a new process, same database
    assert outbox.deliver_pending(engine, crm, T0 + timedelta(hours=1)).delivered == 1
    engine.dispose()


def test_a_deliverer_that_died_holding_a_row_loses_its_lease(services, sf):
    fake, crm, acct, _ = sf
    apply_change(
        services.engine,
        crm,
        user_id="rep_a",
        change=_task(acct, 1),
        evidence_ids=[],
        key="k",
        now=T0,
        deliver=False,
    )
    policy = outbox.RetryPolicy(lease_s=60)
    row_id = outbox.get(services.engine, "k")["id"]
    assert outbox._claim(services.engine, row_id, T0, policy, force=False) is not None  # …and then it crashed
    assert (
        outbox.deliver_pending(services.engine, crm, T0 + timedelta(seconds=30), policy=policy).delivered == 0
    )
    assert (
        outbox.deliver_pending(services.engine, crm, T0 + timedelta(seconds=61), policy=policy).delivered == 1
    )


def test_outbox_commands_list_retry_cancel(services, sf):
    fake, crm, acct, _ = sf
    fake.faults.down = True
    for i in range(3):
        apply_change(
            services.engine, crm, user_id="rep_a", change=_task(acct, i), evidence_ids=[], key=f"k{i}", now=T0
        )
    listed = commands.list_outbox(services.engine)
    assert [r["key"] for r in listed["items"]] == ["k0", "k1", "k2"] and listed["counts"]["pending"] == 3
    ids = [r["id"] for r in listed["items"]]
    assert commands.cancel_outbox(services.engine, [ids[0]], user_id="admin")["cancelled"] == [ids[0]]
    fake.faults.down = False
    assert commands.retry_outbox(services.engine, user_id="admin", now=T0)["retried"] == ids[1:]
    assert outbox.deliver_pending(services.engine, crm, T0).delivered == 2
    counts = commands.list_outbox(services.engine, status="delivered")["counts"]
    assert counts == {"pending": 0, "delivered": 2, "failed": 0, "cancelled": 1}
    assert commands.cancel_outbox(services.engine, [ids[1]])["not_cancellable"] == [ids[1]]
    assert [e["action"] for e in audit.entries(services.engine, user_id="admin")] == ["outbox.cancel"] + [
        "outbox.retry"
    ] * 2
