"""Issue #21, row 5: the fields of a CRM change are validated per op (types, dates, lengths, stages); the
owner is the customer's owner or in the caller's scope; the customer never comes from the body. A row
that fails for a non-transient reason is ``failed`` after a bounded number of attempts and the rep is
notified: it never loops."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import OperationalError, ProgrammingError

from copilot.features.writeback import outbox
from copilot.features.writeback.change_fields import InvalidChange, validate_change
from copilot.features.writeback.delivery import list_notifications
from copilot.storage import tables as t
from tests.copilot.conftest import token_for

TASK = {"op": "create_task", "fields": {"customer_id": "c_a1", "title": "发送报价单", "due": "2026-12-01"}}
T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


def _count(services, table, *where) -> int:
    with services.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar()


def _apply(client, services, sid, fields, user="rep_a"):
    return client.post(
        f"/api/suggestions/{sid}/apply", json={"fields": fields}, headers=token_for(services, user)
    )


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"title": {"x": [1, 2]}}, "title 应为文本"),
        ({"title": 42}, "title 应为文本"),
        ({"due": "not-a-date"}, "due 日期格式应为 YYYY-MM-DD"),
        ({"due": "2026-02-30"}, "due 日期格式应为 YYYY-MM-DD"),
        ({"due": "9999-12-31"}, "due 日期应在 2000–2099 年之间"),
        ({"title": "长" * 201}, "title 过长"),
        ({"notes": ["a"]}, "notes 应为文本"),
        ({"owner_user_id": "rep_b"}, "owner_user_id 只能是客户负责人或您权限范围内的同事"),
        ({"owner_user_id": "nobody"}, "owner_user_id 只能是客户负责人"),
        ({"customer_id": "c_b1"}, "不能修改客户"),
    ],
)
def test_invalid_fields_are_422_in_chinese_and_nothing_is_written(
    crm_services, client_for, make_suggestion, fields, words
):
    sid = make_suggestion(crm_services, "rep_a", "c_a1", TASK)
    client = client_for(crm_services)
    tasks = crm_services.crm.get_customer("c_a1").tasks

    r = _apply(client, crm_services, sid, fields)

    assert r.status_code == 422, r.text
    assert r.json()["error"] == "validation_error" and words in r.json()["detail"]
    assert _count(crm_services, t.outbox) == 0 and _count(crm_services, t.audit_log) == 0
    ev = t.suggestion_events.c
    assert _count(crm_services, t.suggestion_events, ev.suggestion_id == sid, ev.event != "proposed") == 0
    assert crm_services.crm.get_customer("c_a1").tasks == tasks


def test_the_owner_may_be_the_customers_owner_or_in_a_managers_team(
    crm_services, client_for, make_suggestion
):
    client = client_for(crm_services)
    mine = make_suggestion(crm_services, "rep_a", "c_a1", TASK)
    r = _apply(client, crm_services, mine, {"owner_user_id": "rep_a", "title": "  回访张总  "})
    assert r.status_code == 200, r.text
    (task,) = [x for x in crm_services.crm.get_customer("c_a1").tasks if x.title == "回访张总"]  # trimmed

    managers = make_suggestion(crm_services, "mgr_a", "c_a1", TASK, title="经理安排")
    assert (
        _apply(client, crm_services, managers, {"owner_user_id": "rep_a2"}, user="mgr_a").status_code == 200
    )
    other = make_suggestion(crm_services, "mgr_a", "c_a1", TASK, title="又一条", action_type="care_task")
    assert _apply(client, crm_services, other, {"owner_user_id": "rep_b"}, user="mgr_a").status_code == 422


def test_an_edit_through_feedback_is_validated_too(crm_services, client_for, make_suggestion):
    sid = make_suggestion(crm_services, "rep_a", "c_a1", TASK)
    client = client_for(crm_services)
    edited = {"proposed_change": {"fields": {"due": "下周三"}}}
    r = client.post(f"/api/suggestions/{sid}/feedback", json={"action": "edit", "edited": edited},
                    headers=token_for(crm_services, "rep_a"))  # fmt: skip
    assert r.status_code == 422 and "due" in r.json()["detail"]


def test_validate_change_covers_every_op():
    assert validate_change("log_visit", {"customer_id": "c", "date": "2026-10-01", "contacts": ["张总"]})[
        "contacts"
    ] == ["张总"]
    assert validate_change("add_note", {"customer_id": "c", "body": " 备注 "})["body"] == "备注"
    for op, fields in [
        ("update_stage", {"customer_id": "c", "opportunity_id": "o", "stage": "差不多了"}),
        ("log_visit", {"customer_id": "c", "date": "2026-10-01", "contacts": "张总"}),
        ("log_visit", {"customer_id": "c", "date": "2026-10-01", "contacts": ["x"] * 21}),
        ("add_note", {"customer_id": "c", "body": ""}),
        ("create_task", {"title": "no customer"}),
        ("delete_everything", {"customer_id": "c"}),
    ]:
        with pytest.raises(InvalidChange):
            validate_change(op, fields)


def _poison_row(services, payload, key="legacy:create_task") -> int:
    """An outbox row queued before fields were validated (the issue's `{"title": {"x": [1, 2]}}`)."""
    with services.engine.begin() as conn:
        return conn.execute(
            insert(t.outbox).values(
                idempotency_key=key, op="create_task", payload=payload, status="pending", attempts=0,
                next_attempt_at=T0, created_at=T0, user_id="rep_a",
            )
        ).inserted_primary_key[0]  # fmt: skip


def _row(services, row_id):
    with services.engine.connect() as conn:
        return conn.execute(select(t.outbox).where(t.outbox.c.id == row_id)).mappings().one()


def test_a_poison_row_fails_at_once_and_the_rep_is_notified(crm_services):
    row_id = _poison_row(crm_services, {"customer_id": "c_a1", "title": {"x": [1, 2]}})

    out = crm_services.writeback.tick(now=T0 + timedelta(seconds=1), sync=False)

    row = _row(crm_services, row_id)
    assert out["failed"] == 1 and row["status"] == "failed" and row["attempts"] == 1
    assert "title 应为文本" in row["last_error"]
    notes = list_notifications(crm_services.engine, "rep_a")["items"]
    assert len(notes) == 1 and notes[0]["kind"] == "crm_write_failed"
    later = crm_services.writeback.tick(now=T0 + timedelta(days=1), sync=False)
    assert later == {"delivered": 0, "retrying": 0, "failed": 0}  # never picked up again


class BrokenCRM:
    """A CRM adapter with a bug: every write raises something that is not a CRM error."""

    name = "local"

    def __init__(self, error: Exception) -> None:
        self.error, self.calls = error, 0

    def create_task(self, task, *, idempotency_key):
        self.calls += 1
        raise self.error


def test_an_unexpected_error_is_retried_a_bounded_number_of_times_then_fails(crm_services):
    row_id = _poison_row(crm_services, {"customer_id": "c_a1", "title": "回访"})
    crm = BrokenCRM(ProgrammingError("INSERT", {}, Exception("can't adapt type 'dict'")))
    failed: list[dict] = []
    policy = outbox.RetryPolicy(base_delay_s=1.0, max_delay_s=10.0)
    now = T0
    for _ in range(10):  # far more passes than attempts: it must stop by itself
        now += timedelta(minutes=5)
        outbox.deliver_pending(crm_services.engine, crm, now, policy=policy, on_failed=failed.append)

    row = _row(crm_services, row_id)
    assert crm.calls == policy.max_error_attempts == 3
    assert (
        row["status"] == "failed" and "ProgrammingError" in row["last_error"] and row["locked_until"] is None
    )
    assert len(failed) == 1


def test_a_database_outage_during_delivery_is_transient(crm_services):
    row_id = _poison_row(crm_services, {"customer_id": "c_a1", "title": "回访"})
    crm = BrokenCRM(OperationalError("INSERT", {}, Exception("server closed the connection")))
    policy = outbox.RetryPolicy(base_delay_s=1.0, max_delay_s=10.0, max_attempts=6)
    now = T0
    for _ in range(4):
        now += timedelta(minutes=5)
        outbox.deliver_pending(crm_services.engine, crm, now, policy=policy, on_failed=crm_services.notifier)
    assert _row(crm_services, row_id)["status"] == "pending" and crm.calls == 4  # still retrying
