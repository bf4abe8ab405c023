"""Write-back that runs by itself: outbox delivery, failure notifications, CRM sync-back.

    WritebackTicker(...).tick()    one pass: deliver every due pending outbox row; every
                                   COPILOT_CRM_SYNC_INTERVAL_S also read outcomes back from the CRM
    OutboxLoop(tick, s).start()    a daemon thread calling tick every COPILOT_OUTBOX_INTERVAL_S
                                   (the API app in embedded mode; ``copilot worker`` in Redis mode)
    failure_notifier(engine, push=…)  the outbox's ``on_failed`` hook: a Chinese notification for the
                                   rep who confirmed the write (GET /api/notifications), and a channel
                                   push to the rep's bound WeCom/DingTalk accounts

Several processes may tick at once: rows are claimed with a lease (outbox.py) and outcomes are
unique per move (sync.py), so nothing is written twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from connectors.crm.errors import CRMError
from copilot.features.writeback import outbox
from copilot.features.writeback.sync import sync_outcomes
from copilot.storage.tables import notifications

logger = logging.getLogger(__name__)

CRM_WRITE_FAILED = "crm_write_failed"
OP_NAMES = {
    "create_task": "新建任务",
    "log_visit": "记录拜访",
    "update_stage": "更新商机阶段",
    "add_note": "添加备注",
}

# (user_id, text) → True when the text reached the user on their bound channel (WeCom/DingTalk).
ChannelPush = Callable[[str, str], bool]


# -- notifications ----------------------------------------------------------------------------


def notify(
    engine: Engine,
    user_id: str,
    *,
    kind: str,
    title: str,
    body: str,
    ref: str | None = None,
    now: datetime | None = None,
) -> int:
    with engine.begin() as conn:
        result = conn.execute(
            insert(notifications).values(
                user_id=user_id,
                kind=kind,
                title=title,
                body=body,
                ref=ref,
                created_at=now or datetime.now(UTC),
            )
        )
    return int(result.inserted_primary_key[0])


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).isoformat()


def list_notifications(
    engine: Engine, user_id: str, *, unread_only: bool = False, limit: int = 50
) -> dict[str, Any]:
    """``{"items": [...newest first], "unread": n}`` for one user."""
    c = notifications.c
    stmt = select(notifications).where(c.user_id == user_id).order_by(c.id.desc()).limit(limit)
    if unread_only:
        stmt = stmt.where(c.read_at.is_(None))
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(stmt).mappings()]
        unread = conn.execute(
            select(func.count()).select_from(notifications).where(c.user_id == user_id, c.read_at.is_(None))
        ).scalar()
    items = [
        {
            "id": r["id"],
            "kind": r["kind"],
            "title": r["title"],
            "body": r["body"],
            "ref": r["ref"],
            "created_at": _iso(r["created_at"]),
            "read": r["read_at"] is not None,
        }
        for r in rows
    ]
    return {"items": items, "unread": int(unread or 0)}


def mark_read(engine: Engine, user_id: str, notification_id: int) -> bool:
    """Mark one of ``user_id``'s notifications read; False if it is not theirs (or does not exist)."""
    c = notifications.c
    with engine.begin() as conn:
        found = conn.execute(
            select(c.id, c.read_at).where(c.id == notification_id, c.user_id == user_id)
        ).first()
        if found is None:
            return False
        if found.read_at is None:
            conn.execute(
                update(notifications).where(c.id == notification_id).values(read_at=datetime.now(UTC))
            )
    return True


def _describe(op: str, payload: dict[str, Any]) -> str:
    what = OP_NAMES.get(op, op)
    detail = payload.get("title") or payload.get("stage") or payload.get("date") or payload.get("body") or ""
    detail = str(detail)
    if len(detail) > 40:
        detail = detail[:40] + "…"
    return f"{what}「{detail}」" if detail else what


def failure_text(row: dict[str, Any]) -> tuple[str, str]:
    """(title, body) in Chinese for an outbox row that failed for good."""
    payload = row.get("payload") or {}
    customer = payload.get("customer_id")
    body = (
        f"{_describe(row.get('op', ''), payload)}"
        f"{f'（客户 {customer}）' if customer else ''}未能写入 CRM。"
        f"{row.get('last_error') or ''}"
        f" 这条记录没有丢失：可在 CRM 中手动补录，或请管理员处理后执行 `copilot outbox retry {row.get('id')}` 重试。"
    )
    return "CRM 写入失败", body


def failure_notifier(
    engine: Engine, *, push: Callable[[], ChannelPush | None] | None = None
) -> Callable[[dict[str, Any]], None]:
    """The outbox ``on_failed`` hook: tell the rep who confirmed the write, in Chinese (a notification
    row, and ``push()``'s chat message to the rep's bound WeCom/DingTalk accounts when there is one)."""

    def on_failed(row: dict[str, Any]) -> None:
        user_id = row.get("user_id")
        if not user_id:
            logger.warning("outbox %s failed; no user to notify", row.get("id"))
            return
        title, body = failure_text(row)
        nid = notify(engine, user_id, kind=CRM_WRITE_FAILED, title=title, body=body,
                     ref=row.get("idempotency_key"))  # fmt: skip
        logger.info("notification %s for user %s (outbox %s failed)", nid, user_id, row.get("id"))
        send = push() if push is not None else None
        if send is not None:
            try:
                send(user_id, f"{title}：{body}")
            except Exception as exc:  # noqa: BLE001 - the notification row is already there
                logger.warning("channel push of notification %s failed: %s", nid, type(exc).__name__)

    return on_failed


# -- the tick and the loop --------------------------------------------------------------------


class WritebackTicker:
    """One background pass at a time: deliver due outbox rows (permanent failures notify the rep);
    read outcomes back from the CRM every ``sync_interval_s`` (0 = only when asked)."""

    def __init__(
        self,
        *,
        engine: Engine,
        crm: Callable[[], Any],
        on_failed: Callable[[dict[str, Any]], None] | None,
        sync_interval_s: float,
    ) -> None:
        self.engine = engine
        self._crm = crm
        self.on_failed = on_failed
        self.sync_interval_s = sync_interval_s
        self.last_sync: datetime | None = None

    def tick(self, *, now: datetime | None = None, sync: bool | None = None) -> dict[str, Any]:
        """Runs the CRM sync-back when ``sync`` is True, or, by default, when the sync interval has
        passed since this process last ran it. Never raises for CRM trouble; returns what it did."""
        now = now or outbox.utcnow()
        crm = self._crm()
        report = outbox.deliver_pending(self.engine, crm, now, on_failed=self.on_failed)
        out: dict[str, Any] = {"delivered": report.delivered, "retrying": report.retrying,
                               "failed": report.failed}  # fmt: skip
        interval = self.sync_interval_s
        if sync is None:
            sync = interval > 0 and (
                self.last_sync is None or (now - self.last_sync).total_seconds() >= interval
            )
        if sync:
            self.last_sync = now
            try:
                out["sync"] = sync_outcomes(self.engine, crm, now=now).to_json()
            except CRMError as exc:
                logger.warning("sync-back skipped: CRM unavailable (status %s)", exc.status)
                out["sync"] = {"error": exc.user_message}
        return out


class OutboxLoop:
    """Calls ``tick()`` at once and then every ``interval_s`` seconds on a daemon thread."""

    def __init__(self, tick: Callable[[], Any], interval_s: float) -> None:
        self._tick = tick
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0

    def start(self) -> OutboxLoop:
        if self.interval_s > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="copilot-outbox", daemon=True)
            self._thread.start()
            logger.info("outbox loop started (every %s s)", self.interval_s)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as exc:  # noqa: BLE001 - keep looping; the next tick retries
                logger.warning("outbox tick failed: %s", type(exc).__name__)
            self.ticks += 1
            self._stop.wait(self.interval_s)
