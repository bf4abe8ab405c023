"""HubSpotCRM against the fake HubSpot (validated against HubSpot's OpenAPI specs): contract, faults."""

from __future__ import annotations

import pytest

from connectors.crm.base import StageUpdate, TaskDraft
from connectors.crm.errors import CRMAuthError, CRMRejected, CRMUnavailable
from connectors.crm.hubspot import HubSpotCRM
from tests.connectors.crm.contract import CRMContract, CRMEnv
from tests.fakes.fake_hubspot import FakeHubSpot, running_fake_hubspot

OWNER, OTHER = "71", "72"


def seed(fake: FakeHubSpot) -> tuple[str, str]:
    company = fake.add(
        "companies",
        {
            "name": "华星电子",
            "industry": "制造业",
            "state": "上海",
            "hubspot_owner_id": OWNER,
            "hs_ideal_customer_profile": "tier_1",
        },
    )
    fake.add(
        "contacts",
        {"lastname": "张总", "jobtitle": "总经理", "hs_buying_role": "DECISION_MAKER"},
        company=company,
    )
    deal = fake.add(
        "deals", {"dealname": "产线监测二期", "dealstage": "decisionmakerboughtin"}, company=company
    )
    fake.add(
        "meetings",
        {"hs_timestamp": "2026-09-25T00:00:00.000Z", "hs_activity_type": "上门拜访"},
        company=company,
    )
    fake.add(
        "tasks", {"hs_timestamp": "2026-09-30T00:00:00.000Z", "hs_task_subject": "寄送样品"}, company=company
    )
    return company, deal


def hs_count(fake: FakeHubSpot):
    types = {"task": "tasks", "visit": "meetings", "note": "notes"}

    def count(kind: str, customer_id: str) -> int:
        return len(fake.linked("companies", customer_id, types[kind]))

    return count


@pytest.fixture
def fake():
    with running_fake_hubspot() as fake:
        yield fake
        assert fake.violations == []


@pytest.fixture
def crm(fake):
    crm = HubSpotCRM(base_url=fake.url, token=fake.token, timeout=3.0)
    yield crm
    crm.close()


class TestHubSpotCRM(CRMContract):
    unknown_customer_id = "999999"
    unknown_opportunity_id = "999998"

    @pytest.fixture
    def env(self, fake, crm) -> CRMEnv:
        company, deal = seed(fake)
        return CRMEnv(crm, company, deal, OWNER, OTHER, hs_count(fake))

    def test_engagements_upsert_by_unique_property(self, env: CRMEnv, fake: FakeHubSpot):
        env.crm.create_task(TaskDraft(env.customer_id, "回访"), idempotency_key="sg_1:create_task")
        assert ("POST", "/crm/v3/objects/tasks/batch/upsert") in fake.requests
        (task,) = [
            t for t in fake.records("tasks") if t["properties"].get("copilot_key") == "sg_1:create_task"
        ]
        assert fake.linked("tasks", task["id"], "companies") == [env.customer_id]


def test_fake_rejects_requests_that_break_the_spec(fake):
    import httpx

    r = httpx.post(
        f"{fake.url}/crm/v3/objects/tasks/batch/read",
        json={"inputs": [{"id": "1"}]},  # properties and propertiesWithHistory are required
        headers={"Authorization": f"Bearer {fake.token}"},
    )
    assert r.status_code == 400 and r.json()["category"] == "VALIDATION_ERROR"


def test_server_error_is_retryable(fake, crm):
    company, _ = seed(fake)
    fake.faults.fail_next(1, status=500)
    with pytest.raises(CRMUnavailable):
        crm.create_task(TaskDraft(company, "x"), idempotency_key="k")


def test_429_carries_retry_after(fake, crm):
    company, _ = seed(fake)
    fake.faults.fail_next(1, status=429, retry_after="3")
    with pytest.raises(CRMUnavailable) as exc:
        crm.create_task(TaskDraft(company, "x"), idempotency_key="k")
    assert exc.value.retry_after == 3.0 and exc.value.status == 429


def test_retry_after_a_timeout_where_hubspot_wrote_makes_one_task(fake, crm):
    company, _ = seed(fake)
    fake.faults.pass_next(1)  # the company check
    fake.faults.hang_next(1, seconds=6, after_write=True)  # the upsert writes, then the response never comes
    with pytest.raises(CRMUnavailable):
        crm.create_task(TaskDraft(company, "回访"), idempotency_key="k-timeout")
    ref = crm.create_task(TaskDraft(company, "回访"), idempotency_key="k-timeout")
    assert [t["id"] for t in fake.records("tasks") if t["properties"].get("hs_task_subject") == "回访"] == [
        ref.id
    ]
    assert fake.linked("tasks", ref.id, "companies") == [company]


def test_invalid_stage_carries_hubspot_message(fake):
    company, deal = seed(fake)
    crm = HubSpotCRM(base_url=fake.url, token=fake.token, stage_map={"赢单": "won-ish"})
    with pytest.raises(CRMRejected) as exc:
        crm.update_stage(StageUpdate(company, deal, "赢单"), idempotency_key="k")
    crm.close()
    assert "won-ish" in exc.value.message and exc.value.code == "VALIDATION_ERROR"


def test_bad_token_is_an_auth_error(fake):
    crm = HubSpotCRM(base_url=fake.url, token="wrong")
    with pytest.raises(CRMAuthError):
        crm.list_customers()
    crm.close()
