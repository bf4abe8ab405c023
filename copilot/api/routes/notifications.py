"""A user's notifications (e.g. a confirmed CRM write that failed for good), newest first."""

from __future__ import annotations

from fastapi import APIRouter, Path

from copilot.api.deps import ServicesDep, UserDep
from copilot.errors import AppError
from copilot.features.writeback.delivery import list_notifications, mark_read

router = APIRouter(prefix="/api", tags=["notifications"])


@router.get("/notifications")
def notifications(user: UserDep, services: ServicesDep, unread: bool = False, limit: int = 50) -> dict:
    """我的通知（如 CRM 写入失败），最新的在前；unread=true 只看未读。"""
    if not 1 <= limit <= 200:
        raise AppError("validation_error", "limit 取值范围 1–200。")
    return list_notifications(services.engine, user.id, unread_only=unread, limit=limit)


@router.post("/notifications/{notification_id}/read")
def read(
    user: UserDep,
    services: ServicesDep,
    # Bounded to a 64-bit id: a larger number reached the database driver and failed there (a 500).
    notification_id: int = Path(ge=1, le=2**63 - 1),
) -> dict:
    """把一条通知标为已读。"""
    if not mark_read(services.engine, user.id, notification_id):
        raise AppError("not_found", "通知不存在。")
    return {"id": notification_id, "read": True}
