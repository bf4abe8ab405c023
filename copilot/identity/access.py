"""Scoping: every read of a customer goes through here, so a rep never sees another's data."""

from __future__ import annotations

from connectors.crm.base import CRM, CustomerSnapshot, CustomerSummary
from copilot.domain import User
from copilot.errors import AppError
from copilot.identity.users import UserDirectory


def customer_not_found(customer_id: str) -> AppError:
    """One answer for a missing customer and one the user may not see: existence cannot be probed."""
    return AppError("customer_not_found", f"客户 {customer_id[:64]} 不存在。")


def customer_for(
    user: User, customer_id: str, *, crm: CRM, users: UserDirectory, hide: bool = True
) -> CustomerSnapshot:
    """The customer if ``user`` may see it; else the same 404 as a missing one. ``hide=False`` answers
    403 instead, where the caller already knows the customer (e.g. applying the rep's own suggestion)."""
    snapshot = crm.get_customer(customer_id)
    if snapshot is None:
        raise customer_not_found(customer_id)
    owners = users.visible_owner_ids(user)
    if owners is not None and snapshot.owner_user_id not in owners:
        if hide:
            raise customer_not_found(customer_id)
        raise AppError("forbidden", "无权操作该客户：只能操作自己（经理为本团队）负责的客户。")
    return snapshot


def customers_for(
    user: User, *, crm: CRM, users: UserDirectory, q: str | None = None
) -> list[CustomerSummary]:
    return crm.list_customers(owner_ids=users.visible_owner_ids(user), q=q)
