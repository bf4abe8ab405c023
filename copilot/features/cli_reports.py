"""The JSON documents of `copilot kb search` and `copilot suggest` (DESIGN §5.2), built in one place.

The CLI builds them in-process, or asks a running `copilot serve` of the same home for them
(``/api/local/*``, ``copilot.api.routes.local_cli``): both paths print the same document.
Errors are ``AppError`` with the Chinese message the CLI prints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from copilot.errors import AppError
from copilot.features.kb_views import hit_json

if TYPE_CHECKING:
    from copilot.features.suggestions.suggester import Suggester
    from copilot.identity.users import UserDirectory
    from knowledge_base.base import KnowledgeBase


def kb_search_report(
    kb: KnowledgeBase, users: UserDirectory, query: str, *, k: int = 5, user_id: str | None = None
) -> dict[str, Any]:
    """``{"query", "results": [hit_json…]}``: every document, or those ``user_id`` may read."""
    visible = None
    if user_id:
        user = users.get(user_id)
        if user is None:
            raise AppError("not_found", f"用户 {user_id} 不存在")
        visible = users.visible_teams(user)
    hits = kb.search(query, k=k, visible_teams=visible)
    return {"query": query, "results": [hit_json(h) for h in hits]}


def suggest_report(sg: Suggester, customer_id: str, as_of: str | None = None) -> dict[str, Any]:
    """``{"customer_id", "as_of", "mode", "suggestions", "note"?}``, stored as the owner's suggestions
    (so their ids work in the API); a customer without an owner is planned without KB team scope."""
    from copilot.features.suggestions.suggester import parse_as_of

    day = parse_as_of(as_of)
    snapshot = sg.crm.get_customer(customer_id)
    if snapshot is None:
        raise AppError("customer_not_found", f"客户 {customer_id} 不存在")
    owner = sg.users.get(snapshot.owner_user_id) if snapshot.owner_user_id else None
    if owner is not None:
        result = sg.for_customer(owner, customer_id, as_of=day, channel="cli")
    else:
        result = sg.plan(snapshot, day, teams=set())
    data: dict[str, Any] = {
        "customer_id": customer_id,
        "as_of": day.isoformat(),
        "mode": result.mode,
        "suggestions": [s.to_json() for s in result.suggestions],
    }
    if result.note:
        data["note"] = result.note
    return data
