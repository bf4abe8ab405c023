from __future__ import annotations

import pytest

from connectors.crm.salesforce import SalesforceCRM
from tests.connectors.crm.test_salesforce import seed
from tests.fakes.fake_salesforce import running_fake_salesforce


@pytest.fixture
def sf():
    """(fake Salesforce, SalesforceCRM pointed at it, seeded account id, opportunity id)."""
    with running_fake_salesforce() as fake:
        crm = SalesforceCRM(instance_url=fake.url, access_token=fake.token, timeout=3.0)
        acct, opp = seed(fake)
        yield fake, crm, acct, opp
        crm.close()


@pytest.fixture(params=["salesforce", "hubspot"])
def remote(request):
    """(fake, adapter, customer id, count of tasks in the CRM) for each remote CRM."""
    if request.param == "salesforce":
        with running_fake_salesforce() as fake:
            crm = SalesforceCRM(instance_url=fake.url, access_token=fake.token, timeout=3.0)
            acct, _ = seed(fake)
            yield fake, crm, acct, lambda: len([r for r in fake.records("Task") if r.get("Copilot_Key__c")])
            crm.close()
    else:
        from connectors.crm.hubspot import HubSpotCRM
        from tests.connectors.crm.test_hubspot import seed as hs_seed
        from tests.fakes.fake_hubspot import running_fake_hubspot

        with running_fake_hubspot() as fake:
            crm = HubSpotCRM(base_url=fake.url, token=fake.token, timeout=3.0)
            company, _ = hs_seed(fake)
            yield (
                fake,
                crm,
                company,
                lambda: len([r for r in fake.records("tasks") if r["properties"].get("copilot_key")]),
            )
            crm.close()
            assert fake.violations == []


@pytest.fixture
def make_suggestion():
    """``make_suggestion(services, user_id, customer_id, change)`` → the id of a stored, proposed suggestion
    (no knowledge base needed: one CRM citation)."""
    from copilot.domain import Citation, ProposedChange, Suggestion
    from copilot.features.suggestions.suggester import SuggestionStore

    def make(services, user_id, customer_id, change, *, title="发送报价单", action_type="follow_up_quote"):
        cite = Citation(
            "crm", f"{customer_id}.visits", "row 1", f"crm: {customer_id}.visits", "上门拜访", "依据拜访记录"
        )
        s = Suggestion(
            id="",
            customer_id=customer_id,
            action_type=action_type,
            title=title,
            rationale="客户关注价格，需跟进报价",
            confidence=0.8,
            citations=(cite,),
            proposed_change=ProposedChange(change["op"], dict(change["fields"])),
            status="proposed",
            created_at="",
        )
        (stored,) = SuggestionStore(services.engine).upsert(user_id, [s])
        return stored.id

    return make
