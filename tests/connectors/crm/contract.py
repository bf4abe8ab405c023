"""The one contract every CRM adapter keeps (inherited by TestLocalCRM, TestSalesforceCRM, TestHubSpotCRM).

A subclass provides the fixture ``env`` → ``CRMEnv``: the adapter, the ids of one seeded customer
(华星电子, owner ``owner``, contact 张总, opportunity 产线监测二期 in 商务谈判, one visit, one task),
and ``count(kind, customer_id)`` reading the CRM's own store, so "one record" is checked at the source.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from connectors.crm.base import CRM, NoteDraft, StageUpdate, TaskDraft, VisitDraft
from connectors.crm.errors import CRMRejected


@dataclass
class CRMEnv:
    crm: CRM
    customer_id: str
    opportunity_id: str
    owner_id: str
    other_owner_id: str
    count: Callable[[str, str], int]  # (kind: task|visit|note, customer_id) → records in the CRM


class CRMContract:
    # -- reads ----------------------------------------------------------------------------------
    def test_snapshot_has_profile_contacts_opportunities_visits_tasks(self, env: CRMEnv):
        snap = env.crm.get_customer(env.customer_id)
        assert snap is not None and snap.id == env.customer_id and snap.name == "华星电子"
        assert snap.owner_user_id == env.owner_id and snap.industry == "制造业"
        assert [c.name for c in snap.contacts] == ["张总"] and snap.contacts[0].is_decision_maker
        assert [(o.id, o.stage) for o in snap.opportunities] == [(env.opportunity_id, "商务谈判")]
        assert [v.date for v in snap.visits] == ["2026-09-25"]
        assert [t.title for t in snap.tasks] == ["寄送样品"]

    def test_unknown_customer_reads_as_none(self, env: CRMEnv):
        assert env.crm.get_customer(self.unknown_customer_id) is None

    def test_list_customers_filters_by_owner_and_query(self, env: CRMEnv):
        assert [c.id for c in env.crm.list_customers(owner_ids={env.owner_id})] == [env.customer_id]
        assert env.crm.list_customers(owner_ids={env.other_owner_id}) == []
        assert [c.name for c in env.crm.list_customers(q="华星")] == ["华星电子"]
        assert env.crm.list_customers(q="不存在的公司") == []
        assert env.crm.list_customers(q="%") == []  # the rep's text is literal, not a wildcard

    # -- writes -----------------------------------------------------------------------------------
    def test_create_task_shows_in_snapshot(self, env: CRMEnv):
        ref = env.crm.create_task(
            TaskDraft(env.customer_id, "发送报价单", due="2026-10-10"), idempotency_key="k-task-1"
        )
        assert ref.kind == "task" and ref.id
        titles = {t.title: t for t in env.crm.get_customer(env.customer_id).tasks}
        assert titles["发送报价单"].due == "2026-10-10" and titles["发送报价单"].status == "open"

    def test_create_task_twice_with_one_key_makes_one_record(self, env: CRMEnv):
        draft = TaskDraft(env.customer_id, "回访张总")
        first = env.crm.create_task(draft, idempotency_key="sg_1:create_task")
        second = env.crm.create_task(draft, idempotency_key="sg_1:create_task")
        assert first == second and env.count("task", env.customer_id) == 2  # the seeded task + this one

    def test_different_keys_make_different_records(self, env: CRMEnv):
        a = env.crm.create_task(TaskDraft(env.customer_id, "甲"), idempotency_key="k-a")
        b = env.crm.create_task(TaskDraft(env.customer_id, "乙"), idempotency_key="k-b")
        assert a != b and env.count("task", env.customer_id) == 3

    def test_log_visit_twice_with_one_key_makes_one_visit(self, env: CRMEnv):
        draft = VisitDraft(
            env.customer_id, "2026-10-08", type="上门拜访", notes="客户关注交付周期", contacts=("张总",)
        )
        first = env.crm.log_visit(draft, idempotency_key="memo_9:log_visit")
        assert env.crm.log_visit(draft, idempotency_key="memo_9:log_visit") == first
        assert env.count("visit", env.customer_id) == 2
        visits = env.crm.get_customer(env.customer_id).visits
        assert visits[-1].date == "2026-10-08" and "交付周期" in visits[-1].notes

    def test_add_note_twice_with_one_key_makes_one_note(self, env: CRMEnv):
        first = env.crm.add_note(NoteDraft(env.customer_id, "张总下周出差"), idempotency_key="n-1")
        assert env.crm.add_note(NoteDraft(env.customer_id, "张总下周出差"), idempotency_key="n-1") == first
        assert first.kind == "note" and env.count("note", env.customer_id) == 1
        assert "张总下周出差" not in [t.title for t in env.crm.get_customer(env.customer_id).tasks]

    def test_update_stage_moves_the_opportunity_and_is_idempotent(self, env: CRMEnv):
        change = StageUpdate(env.customer_id, env.opportunity_id, "赢单", entered="2026-10-09")
        first = env.crm.update_stage(change, idempotency_key="s-1")
        assert env.crm.update_stage(change, idempotency_key="s-1") == first
        assert first.kind == "opportunity" and first.id == env.opportunity_id
        (opp,) = env.crm.get_customer(env.customer_id).opportunities
        assert opp.stage == "赢单"

    def test_concurrent_writes_of_one_key_make_one_record(self, env: CRMEnv):
        draft = TaskDraft(env.customer_id, "并发任务")
        refs, errors = [], []

        def go():
            try:
                refs.append(env.crm.create_task(draft, idempotency_key="k-concurrent"))
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=go) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and len(set(refs)) == 1
        assert env.count("task", env.customer_id) == 2

    def test_write_for_unknown_customer_is_rejected(self, env: CRMEnv):
        with pytest.raises(CRMRejected):
            env.crm.create_task(TaskDraft(self.unknown_customer_id, "x"), idempotency_key="k-unknown")

    def test_stage_update_of_unknown_opportunity_is_rejected(self, env: CRMEnv):
        with pytest.raises(CRMRejected):
            env.crm.update_stage(
                StageUpdate(env.customer_id, self.unknown_opportunity_id, "赢单"),
                idempotency_key="k-unknown-opp",
            )

    unknown_customer_id = "no_such_customer"
    unknown_opportunity_id = "no_such_opportunity"
