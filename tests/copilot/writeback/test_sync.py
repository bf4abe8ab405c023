"""Sync back: stage moves and won/lost are read from whichever CRM is connected, once each."""

from __future__ import annotations

import threading

from connectors.crm.base import StageUpdate
from copilot.features.writeback.sync import outcomes, sync_outcomes


def _moves(engine, **kw):
    return [
        (o["opportunity_id"], o["seq"], o["previous_stage"], o["stage"], o["outcome"])
        for o in outcomes(engine, **kw)
    ]


def test_local_crm_history_then_moves_then_won_once(crm_services):
    engine, crm = crm_services.engine, crm_services.crm
    first = sync_outcomes(engine, crm)
    assert first.customers == 3 and first.recorded == 2 and first.errors == 0
    assert _moves(engine) == [("o_a1", 1, None, "需求确认", None), ("o_a1", 2, "需求确认", "商务谈判", None)]
    assert outcomes(engine)[0]["entered"] == "2026-06-01" and outcomes(engine)[0]["crm"] == "local"
    assert sync_outcomes(engine, crm).recorded == 0  # idempotent

    crm.update_stage(StageUpdate("c_a1", "o_a1", "赢单", "2026-11-30"), idempotency_key="won")
    assert crm_services.writeback.tick(sync=True)["sync"]["recorded"] == 1  # from the background tick
    assert _moves(engine)[-1] == ("o_a1", 3, "商务谈判", "赢单", "won")
    assert outcomes(engine, customer_id="c_a1")[-1]["entered"] == "2026-11-30"
    assert crm_services.writeback.tick(sync=True)["sync"]["recorded"] == 0
    assert "sync" not in crm_services.writeback.tick()  # the sync interval has not passed since the last sync


def test_concurrent_pollers_record_each_move_once(crm_services):
    threads = [
        threading.Thread(target=sync_outcomes, args=(crm_services.engine, crm_services.crm)) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [m[1] for m in _moves(crm_services.engine)] == [1, 2]


def test_salesforce_stage_moves_and_lost(services, sf):
    fake, crm, acct, opp = sf
    first = sync_outcomes(services.engine, crm)
    assert first.customers == 1 and _moves(services.engine) == [(opp, 1, None, "商务谈判", None)]
    assert (
        outcomes(services.engine)[0]["crm"] == "salesforce"
        and outcomes(services.engine)[0]["customer_id"] == acct
    )

    crm.update_stage(StageUpdate(acct, opp, "输单"), idempotency_key="lost")  # e.g. changed in Salesforce
    assert sync_outcomes(services.engine, crm).recorded == 1
    assert sync_outcomes(services.engine, crm).recorded == 0
    assert _moves(services.engine, crm="salesforce")[-1] == (opp, 2, "商务谈判", "输单", "lost")

    fake.faults.down = True  # CRM down: counted, not raised, retried by the next poll
    assert sync_outcomes(services.engine, crm, customer_ids=[acct]).errors == 1
