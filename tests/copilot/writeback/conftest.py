from __future__ import annotations

import pytest

from connectors.crm.salesforce import SalesforceCRM
from tests.connectors.crm.test_salesforce import seed
from tests.fakes.fake_salesforce import running_fake_salesforce


@pytest.fixture
def sf():
    """(fake Salesforce, SalesforceCRM pointed at it, seeded account id, opportunity id)."""
    with running_fake_salesforce() as fake:
        crm = SalesforceCRM(instance_url=fake.url, access_token=fake.token, timeout=0.5)
        acct, opp = seed(fake)
        yield fake, crm, acct, opp
        crm.close()


@pytest.fixture(params=["salesforce", "hubspot"])
def remote(request):
    """(fake, adapter, customer id, count of tasks in the CRM) for each remote CRM."""
    if request.param == "salesforce":
        with running_fake_salesforce() as fake:
            crm = SalesforceCRM(instance_url=fake.url, access_token=fake.token, timeout=0.5)
            acct, _ = seed(fake)
            yield fake, crm, acct, lambda: len([r for r in fake.records("Task") if r.get("Copilot_Key__c")])
            crm.close()
    else:
        from connectors.crm.hubspot import HubSpotCRM
        from tests.connectors.crm.test_hubspot import seed as hs_seed
        from tests.fakes.fake_hubspot import running_fake_hubspot

        with running_fake_hubspot() as fake:
            crm = HubSpotCRM(base_url=fake.url, token=fake.token, timeout=0.5)
            company, _ = hs_seed(fake)
            yield (
                fake,
                crm,
                company,
                lambda: len([r for r in fake.records("tasks") if r["properties"].get("copilot_key")]),
            )
            crm.close()
            assert fake.violations == []
