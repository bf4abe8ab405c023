from __future__ import annotations

from fastapi import APIRouter, Query

from copilot.api.deps import KnowledgeBaseDep, UserDep, UsersDep
from copilot.features.kb_views import hit_json

router = APIRouter(prefix="/api/kb", tags=["knowledge base"])


@router.get("/search")
def search(
    user: UserDep,
    kb: KnowledgeBaseDep,
    users: UsersDep,
    q: str = Query(min_length=1, max_length=500),
    k: int = Query(default=5, ge=1, le=50),
) -> dict:
    hits = kb.search(q, k=k, visible_teams=users.visible_teams(user))
    return {"query": q, "results": [hit_json(h) for h in hits]}
