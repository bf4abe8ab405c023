"""SalesforceCRM against the fake Salesforce on 127.0.0.1: the contract, then faults."""

from __future__ import annotations

import pytest

from connectors.crm.base import TaskDraft
from connectors.crm.errors import CRMAuthError, CRMRejected, CRMUnavailable
from connectors.crm.salesforce import SalesforceCRM, external_key
from tests.connectors.crm.contract import CRMContract, CRMEnv
from tests.fakes.fake_salesforce import FakeSalesforce, running_fake_salesforce

OWNER, OTHER = "005000000000001AAA", "005000000000002AAA"


def seed(fake: FakeSalesforce) -> tuple[str, str]:
    acct = fake.add(
        "Account", Name="华星电子", Industry="制造业", BillingState="上海", OwnerId=OWNER, Tier__c="A"
    )
    fake.add("Contact", AccountId=acct, LastName="张总", Title="总经理", Decision_Maker__c=True)
    opp = fake.add(
        "Opportunity",
        AccountId=acct,
        Name="产线监测二期",
        StageName="Negotiation/Review",
        CloseDate="2026-12-31",
    )
    fake.add(
        "Event",
        WhatId=acct,
        Subject="上门拜访",
        Type="上门拜访",
        IsAllDayEvent=True,
        ActivityDate="2026-09-25",
    )
    fake.add("Task", WhatId=acct, Subject="寄送样品", Status="Not Started", Copilot_Kind__c="task")
    return acct, opp


def sf_count(fake: FakeSalesforce):
    def count(kind: str, customer_id: str) -> int:
        sobject = "Event" if kind == "visit" else "Task"
        rows = [r for r in fake.records(sobject) if r.get("WhatId") == customer_id]
        if sobject == "Task":
            rows = [r for r in rows if (r.get("Copilot_Kind__c") == "note") == (kind == "note")]
        return len(rows)

    return count


@pytest.fixture
def fake():
    with running_fake_salesforce() as fake:
        yield fake


@pytest.fixture
def crm(fake):
    crm = SalesforceCRM(instance_url=fake.url, access_token=fake.token, timeout=3.0)
    yield crm
    crm.close()


class TestSalesforceCRM(CRMContract):
    unknown_customer_id = "001999999999999AAA"
    unknown_opportunity_id = "006999999999999AAA"

    @pytest.fixture
    def env(self, fake, crm) -> CRMEnv:
        acct, opp = seed(fake)
        return CRMEnv(crm, acct, opp, OWNER, OTHER, sf_count(fake))

    def test_writes_upsert_by_external_id(self, env: CRMEnv, fake: FakeSalesforce):
        env.crm.create_task(TaskDraft(env.customer_id, "回访"), idempotency_key="sg_1:create_task")
        assert (
            "PATCH",
            f"/services/data/v60.0/sobjects/Task/Copilot_Key__c/{external_key('sg_1:create_task')}",
        ) in (fake.requests)

    def test_snapshot_is_one_composite_call(self, env: CRMEnv, fake: FakeSalesforce):
        fake.requests.clear()
        env.crm.get_customer(env.customer_id)
        assert fake.requests == [("POST", "/services/data/v60.0/composite")]


def test_server_error_is_retryable(fake, crm):
    acct, _ = seed(fake)
    fake.faults.fail_next(1, status=500)
    with pytest.raises(CRMUnavailable) as exc:
        crm.create_task(TaskDraft(acct, "x"), idempotency_key="k")
    assert exc.value.status == 500


def test_429_carries_retry_after(fake, crm):
    acct, _ = seed(fake)
    fake.faults.fail_next(1, status=429, retry_after="7")
    with pytest.raises(CRMUnavailable) as exc:
        crm.create_task(TaskDraft(acct, "x"), idempotency_key="k")
    assert exc.value.retry_after == 7.0


def test_hang_becomes_a_bounded_timeout(fake, crm):
    acct, _ = seed(fake)
    fake.faults.hang_next(1, seconds=6)
    with pytest.raises(CRMUnavailable):
        crm.create_task(TaskDraft(acct, "x"), idempotency_key="k")


def test_retry_after_a_timeout_where_salesforce_wrote_makes_one_task(fake, crm):
    acct, _ = seed(fake)
    fake.faults.hang_next(1, seconds=6, after_write=True)
    with pytest.raises(CRMUnavailable):
        crm.create_task(TaskDraft(acct, "回访"), idempotency_key="k-timeout")
    ref = crm.create_task(TaskDraft(acct, "回访"), idempotency_key="k-timeout")
    assert [r["Id"] for r in fake.records("Task") if r["Subject"] == "回访"] == [ref.id]


def test_validation_error_carries_salesforce_message(fake, crm):
    acct, opp = seed(fake)
    crm_bad = SalesforceCRM(instance_url=fake.url, access_token=fake.token, stage_map={"赢单": "Won!"})
    from connectors.crm.base import StageUpdate

    with pytest.raises(CRMRejected) as exc:
        crm_bad.update_stage(StageUpdate(acct, opp, "赢单"), idempotency_key="k")
    crm_bad.close()
    assert exc.value.code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" and "Won!" in exc.value.message
    assert "CRM 拒绝" in exc.value.user_message


def test_bad_token_is_an_auth_error(fake):
    crm = SalesforceCRM(instance_url=fake.url, access_token="wrong")
    with pytest.raises(CRMAuthError):
        crm.list_customers()
    crm.close()
