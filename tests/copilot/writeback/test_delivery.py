"""Outbox delivery runs by itself (the app's background loop), and a write that fails for good tells
the rep who confirmed it, in Chinese, and nobody else."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from copilot.api.app import create_app
from copilot.features.writeback import outbox
from copilot.features.writeback.apply import apply_change
from copilot.features.writeback.delivery import OutboxLoop
from tests.copilot.conftest import token_for


def _queue(services, user_id, customer_id, i):
    change = {"op": "create_task", "fields": {"customer_id": customer_id, "title": f"回访任务{i}"}}
    return apply_change(
        services.engine,
        services.crm,
        user_id=user_id,
        change=change,
        evidence_ids=[],
        key=f"k{i}",
        deliver=False,
    )


def _wait(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_the_app_delivers_pending_rows_without_anyone_calling_deliver(crm_services):
    for i in range(3):
        assert _queue(crm_services, "rep_a", "c_a1", i).status == "pending"
    crm_services.settings.outbox_interval_s = 0.05
    with TestClient(create_app(crm_services)):  # lifespan starts the loop (embedded mode)
        assert _wait(
            lambda: all(outbox.get(crm_services.engine, f"k{i}")["status"] == "delivered" for i in range(3))
        )
        _queue(crm_services, "rep_a", "c_a1", 3)  # queued while the server runs: picked up by the next tick
        assert _wait(lambda: outbox.get(crm_services.engine, "k3")["status"] == "delivered")
    titles = [x.title for x in crm_services.crm.get_customer("c_a1").tasks]
    assert all(titles.count(f"回访任务{i}") == 1 for i in range(4))


def test_loop_is_off_when_the_interval_is_zero_and_stops_cleanly(crm_services):
    _queue(crm_services, "rep_a", "c_a1", 0)
    crm_services.settings.outbox_interval_s = 0
    with TestClient(create_app(crm_services)):
        time.sleep(0.3)
    assert outbox.get(crm_services.engine, "k0")["status"] == "pending"
    loop = OutboxLoop(crm_services.writeback.tick, 0.05).start()
    assert _wait(lambda: outbox.get(crm_services.engine, "k0")["status"] == "delivered")
    loop.stop()
    assert loop._thread is None and loop.ticks >= 1


def test_permanent_failure_notifies_the_rep_in_chinese_and_only_that_rep(crm_services, client_for):
    pushed = []
    crm_services.provide("channel_push", lambda user_id, text: pushed.append((user_id, text)) or True)
    _queue(crm_services, "rep_a", "c_gone", 0)  # the local CRM rejects: no such customer
    _queue(crm_services, "rep_b", "c_b1", 1)

    report = crm_services.writeback.tick(sync=False)
    assert (report["delivered"], report["failed"]) == (1, 1) and "sync" not in report
    row = outbox.get(crm_services.engine, "k0")
    assert row["status"] == "failed" and "拒绝" in row["last_error"]

    client = client_for(crm_services)
    mine = client.get("/api/notifications", headers=token_for(crm_services, "rep_a")).json()
    assert mine["unread"] == 1
    (note,) = mine["items"]
    assert note["title"] == "CRM 写入失败" and note["kind"] == "crm_write_failed" and note["ref"] == "k0"
    assert "新建任务「回访任务0」" in note["body"] and "c_gone" in note["body"] and "不存在" in note["body"]
    assert f"copilot outbox retry {row['id']}" in note["body"]
    assert client.get("/api/notifications", headers=token_for(crm_services, "rep_b")).json() == {
        "items": [],
        "unread": 0,
    }
    assert pushed == [("rep_a", f"CRM 写入失败：{note['body']}")]

    assert (
        client.post(
            f"/api/notifications/{note['id']}/read", headers=token_for(crm_services, "rep_b")
        ).status_code
        == 404
    )
    assert (
        client.post(
            f"/api/notifications/{note['id']}/read", headers=token_for(crm_services, "rep_a")
        ).status_code
        == 200
    )
    after = client.get("/api/notifications?unread=true", headers=token_for(crm_services, "rep_a")).json()
    assert after == {"items": [], "unread": 0}
    assert client.get("/api/notifications").status_code == 401

    assert (
        crm_services.writeback.tick(sync=False)["failed"] == 0
    )  # failed rows are not retried (nor re-notified)
    assert client.get("/api/notifications", headers=token_for(crm_services, "rep_a")).json()["unread"] == 0
