from __future__ import annotations

from fastapi import APIRouter, Query

from copilot.api.deps import ServicesDep, UserDep
from copilot.identity.access import customer_for, customers_for

router = APIRouter(prefix="/api/customers", tags=["customers"])


@router.get("")
def list_customers(
    user: UserDep, services: ServicesDep, q: str | None = Query(default=None, max_length=200)
) -> dict:
    # Bounded: the search is a SQL LIKE, and SQLite refuses patterns over 50,000 bytes (was a 500).
    rows = customers_for(user, crm=services.crm, users=services.users, q=q)
    return {
        "customers": [
            {"id": c.id, "name": c.name, "tier": c.tier, "industry": c.industry, "region": c.region,
             "owner_user_id": c.owner_user_id}
            for c in rows
        ]
    }  # fmt: skip


@router.get("/{customer_id}")
def get_customer(customer_id: str, user: UserDep, services: ServicesDep) -> dict:
    return customer_for(user, customer_id, crm=services.crm, users=services.users).to_json()
