"""Scoping: every read of a customer goes through here, so a rep never sees another's data."""

from __future__ import annotations

from connectors.crm.base import CRM, CustomerSnapshot, CustomerSummary
from copilot.domain import User
from copilot.errors import AppError
from copilot.identity.users import UserDirectory


def customer_for(user: User, customer_id: str, *, crm: CRM, users: UserDirectory) -> CustomerSnapshot:
    snapshot = crm.get_customer(customer_id)
    if snapshot is None:
        raise AppError("customer_not_found", f"客户 {customer_id} 不存在。")
    owners = users.visible_owner_ids(user)
    if owners is not None and snapshot.owner_user_id not in owners:
        raise AppError("forbidden", "无权查看该客户：只能查看自己（经理为本团队）负责的客户。")
    return snapshot


def customers_for(
    user: User, *, crm: CRM, users: UserDirectory, q: str | None = None
) -> list[CustomerSummary]:
    return crm.list_customers(owner_ids=users.visible_owner_ids(user), q=q)
