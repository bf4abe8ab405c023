"""apply_change: one transaction (audit + outbox + caller's marks), delivery after commit, once per key."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from copilot.features.writeback import audit, outbox
from copilot.features.writeback.apply import apply_change

TASK = {"op": "create_task", "fields": {"customer_id": "c_a1", "title": "发送报价单", "due": "2026-10-10"}}


def test_apply_audits_queues_and_delivers_to_the_local_crm(crm_services):
    marked = []
    result = apply_change(
        crm_services.engine,
        crm_services.crm,
        user_id="rep_a",
        change=TASK,
        evidence_ids=["kb:价格异议话术.md#c1", "crm:c_a1.visits"],
        key="sg_1:create_task",
        in_transaction=lambda conn: marked.append(conn.execute(text("select 1")).scalar()),
    )
    assert result.status == "delivered" and not result.duplicate and result.ref["kind"] == "task"
    assert marked == [1]
    (entry,) = audit.entries(crm_services.engine, key="sg_1:create_task")
    assert entry["user_id"] == "rep_a" and entry["action"] == "crm.create_task" and entry["at"]
    assert entry["after"]["title"] == "发送报价单" and entry["before"] is None
    assert entry["evidence_ids"] == ["kb:价格异议话术.md#c1", "crm:c_a1.visits"]
    assert "发送报价单" in [t.title for t in crm_services.crm.get_customer("c_a1").tasks]


def test_stage_update_audits_the_stage_it_replaced(crm_services):
    change = {
        "op": "update_stage",
        "fields": {"customer_id": "c_a1", "opportunity_id": "o_a1", "stage": "赢单"},
    }
    apply_change(
        crm_services.engine, crm_services.crm, user_id="rep_a", change=change, evidence_ids=[], key="s1"
    )
    (entry,) = audit.entries(crm_services.engine, key="s1")
    assert entry["before"]["stage"] == "商务谈判" and entry["after"]["stage"] == "赢单"


def test_apply_twice_writes_one_record_and_one_audit_entry(crm_services):
    first = apply_change(
        crm_services.engine, crm_services.crm, user_id="rep_a", change=TASK, evidence_ids=[], key="k"
    )
    again = apply_change(
        crm_services.engine, crm_services.crm, user_id="rep_a", change=TASK, evidence_ids=[], key="k"
    )
    assert again.duplicate and again.ref == first.ref
    assert len(audit.entries(crm_services.engine, key="k")) == 1
    assert [t.title for t in crm_services.crm.get_customer("c_a1").tasks].count("发送报价单") == 1


def test_twenty_simultaneous_applies_create_one_crm_record(crm_services):
    results, errors = [], []

    def go():
        try:
            results.append(
                apply_change(
                    crm_services.engine,
                    crm_services.crm,
                    user_id="rep_a",
                    change=TASK,
                    evidence_ids=[],
                    key="k20",
                )
            )
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sum(not r.duplicate for r in results) == 1
    assert len(audit.entries(crm_services.engine, key="k20")) == 1
    assert [t.title for t in crm_services.crm.get_customer("c_a1").tasks].count("发送报价单") == 1


def test_invalid_change_is_refused_before_anything_is_written(crm_services):
    with pytest.raises(ValueError, match="不支持"):
        apply_change(
            crm_services.engine,
            crm_services.crm,
            user_id="rep_a",
            change={"op": "delete_all"},
            evidence_ids=[],
            key="x",
        )
    assert outbox.get(crm_services.engine, "x") is None and audit.entries(crm_services.engine) == []


def test_apply_twice_after_a_timeout_where_the_crm_wrote_creates_one_task(services, sf):
    fake, crm, acct, _ = sf
    change = {"op": "create_task", "fields": {"customer_id": acct, "title": "回访张总"}}
    fake.faults.hang_next(1, seconds=6, after_write=True)
    first = apply_change(
        services.engine, crm, user_id="rep_a", change=change, evidence_ids=[], key="sg_9:create_task"
    )
    assert first.status == "pending" and "超时" in first.message
    again = apply_change(
        services.engine, crm, user_id="rep_a", change=change, evidence_ids=[], key="sg_9:create_task"
    )
    assert again.status == "delivered" and again.duplicate
    assert [t["Id"] for t in fake.records("Task") if t["Subject"] == "回访张总"] == [again.ref["id"]]
    assert len(audit.entries(services.engine, key="sg_9:create_task")) == 1
