"""A CRM write that fails for good reaches the rep where they work: their bound WeCom/DingTalk
account gets the Chinese notice, besides GET /api/notifications."""

from __future__ import annotations

from copilot.features.writeback import outbox
from copilot.features.writeback.apply import apply_change
from tests.copilot.channels.conftest import DING_STAFF


def _queue_rejected_write(services, user_id: str) -> None:
    change = {"op": "create_task", "fields": {"customer_id": "c_gone", "title": "回访任务"}}
    apply_change(services.engine, services.crm, user_id=user_id, change=change, evidence_ids=[],
                 key="k-push", deliver=False)  # fmt: skip


def test_a_failed_write_is_pushed_to_the_reps_wecom_and_dingtalk_accounts(
    bound_services, wecom_fake, dingtalk_fake
):
    _queue_rejected_write(bound_services, "rep_a")

    report = bound_services.writeback.tick(sync=False)

    assert report["failed"] == 1 and outbox.get(bound_services.engine, "k-push")["status"] == "failed"
    [wecom] = [m for m in wecom_fake.sent if m["touser"] == "lilei"]
    assert wecom["text"]["content"].startswith("CRM 写入失败：") and "c_gone" in wecom["text"]["content"]
    assert "copilot outbox retry" in wecom["text"]["content"]
    [ding] = dingtalk_fake.batch_sent
    assert ding["body"]["userIds"] == [DING_STAFF] and "CRM 写入失败" in ding["body"]["msgParam"]


def test_a_rep_without_bound_accounts_only_gets_the_notification(bound_services, wecom_fake, dingtalk_fake):
    bound_services.users.upsert_user({"id": "rep_x", "name": "韩梅", "role": "rep", "team_id": "t_a"})
    _queue_rejected_write(bound_services, "rep_x")

    assert bound_services.writeback.tick(sync=False)["failed"] == 1

    assert wecom_fake.sent == [] and dingtalk_fake.batch_sent == []
