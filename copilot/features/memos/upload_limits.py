"""Limits on what memo uploads may cost: a per-user quota, and a retention period for failed ones.

    check_quota(engine, "u_rep_li", len(data), quota_bytes=500 * 2**20)   # 429 upload_quota_exceeded
    purge_failed_uploads(engine, older_than=timedelta(days=7))             # audio of failed memos

The quota counts the bytes a user uploaded in the last 24 hours (COPILOT_UPLOAD_QUOTA_BYTES). A memo
that failed (not audio, corrupt, silent, too long) keeps its upload for COPILOT_FAILED_UPLOAD_RETENTION_DAYS
so it can be looked at or reprocessed; then the file is deleted and the memo row keeps its error.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, select, update

from copilot.errors import AppError
from copilot.storage import tables as t

logger = logging.getLogger(__name__)
QUOTA_WINDOW = timedelta(hours=24)


def _size(path: str | None) -> int:
    try:
        return Path(path).stat().st_size if path else 0
    except OSError:
        return 0


def uploaded_bytes(engine: Engine, user_id: str, *, since: datetime) -> int:
    m = t.memos.c
    with engine.connect() as conn:
        paths = conn.execute(
            select(m.audio_path).where(m.user_id == user_id, m.created_at >= since)
        ).scalars()
        return sum(_size(p) for p in paths)


def check_quota(
    engine: Engine, user_id: str, size: int, *, quota_bytes: int, now: datetime | None = None
) -> None:
    """AppError 429 ``upload_quota_exceeded`` when ``size`` more bytes would pass the user's daily quota."""
    if quota_bytes <= 0:
        return
    now = now or datetime.now(UTC)
    used = uploaded_bytes(engine, user_id, since=now - QUOTA_WINDOW)
    if used + size > quota_bytes:
        logger.info("upload quota reached by user %s", user_id)
        raise AppError(
            "upload_quota_exceeded",
            f"24 小时内上传的录音已达上限（{quota_bytes // (1024 * 1024)} MB），请稍后再试或联系管理员调整。",
            status=429,
        )


def purge_failed_uploads(engine: Engine, *, older_than: timedelta, now: datetime | None = None) -> int:
    """Delete the uploads of failed memos uploaded more than ``older_than`` ago; returns how many."""
    now = now or datetime.now(UTC)
    m = t.memos.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(m.id, m.audio_path).where(
                m.status == "failed", m.audio_path.is_not(None), m.created_at < now - older_than
            )
        ).all()
    purged = 0
    for memo_id, path in rows:
        try:
            Path(path).unlink(missing_ok=True)
        except OSError as exc:
            logger.warning("upload of memo %s not deleted: %s", memo_id, type(exc).__name__)
            continue
        with engine.begin() as conn:
            conn.execute(update(t.memos).where(m.id == memo_id).values(audio_path=None))
        purged += 1
    if purged:
        logger.info("deleted the uploads of %d failed memos", purged)
    return purged
