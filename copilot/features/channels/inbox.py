"""Inbound message dedup for every bot: a message id is accepted once, in one INSERT.

Platforms retry a callback they think was lost (WeCom three times after 5 s), so the row in
``channel_messages`` (unique channel + message id) is the atomic dedup. It records only ids and
statuses, never content.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, select, update

from connectors.channels.base import InboundMessage
from copilot.storage import tables as t

logger = logging.getLogger(__name__)

channel_messages = t.channel_messages
MAX_KEY = t.MAX_MSG_ID


def message_key(msg_id: str, limit: int = MAX_KEY) -> str:
    """The message id as stored (ids longer than ``limit`` hashed to fit)."""
    if len(msg_id) <= limit:
        return msg_id
    return "sha1:" + hashlib.sha1(msg_id.encode()).hexdigest()  # noqa: S324 -- a key, not a secret


def _insert_new(engine: Engine) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING``: known ids are skipped, not errors."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(channel_messages).on_conflict_do_nothing(
        index_elements=[channel_messages.c.channel, channel_messages.c.msg_id]
    )


class Inbox:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def accept_many(
        self, messages: list[InboundMessage], queue: Callable[[list[InboundMessage]], None]
    ) -> list[bool]:
        """Record the ids of a batch in one transaction; ``queue`` the new ones' answers. For each message:
        True if it is new, False for a repeat delivery — of an earlier message or of one earlier in this
        batch. If ``queue`` raises (Redis down) the ids are forgotten again and the error raised, so the
        platform's retry of these deliveries is not mistaken for a repeat."""
        if not messages:
            return []
        now = datetime.now(UTC)
        keys = [(m.channel, message_key(m.msg_id)) for m in messages]
        rows = [{"channel": c, "msg_id": k, "kind": m.kind, "status": "received", "received_at": now}
                for (c, k), m in dict(zip(keys, messages, strict=True)).items()]  # fmt: skip
        returning = _insert_new(self._engine).returning(channel_messages.c.channel, channel_messages.c.msg_id)
        with self._engine.begin() as conn:  # executemany: one cached statement for any batch size
            new = {tuple(row) for row in conn.execute(returning, rows)}
        accepted, seen = [], set()
        for key, message in zip(keys, messages, strict=True):
            first = key in new and key not in seen
            seen.add(key)
            accepted.append(first)
            if not first:
                logger.info("%s message %s is a repeat delivery; ignored", message.channel, message.msg_id)
        fresh = [m for m, ok in zip(messages, accepted, strict=True) if ok]
        if fresh:
            try:
                queue(fresh)
            except Exception:
                self.forget(new)
                raise
        return accepted

    def forget(self, keys: set[tuple[str, str]] | list[tuple[str, str]]) -> None:
        with self._engine.begin() as conn:
            for channel, key in keys:
                conn.execute(
                    delete(channel_messages).where(
                        channel_messages.c.channel == channel, channel_messages.c.msg_id == key
                    )
                )

    def unanswered(self, messages: list[InboundMessage]) -> list[InboundMessage]:
        """Those of ``messages`` still waiting for their answer (status ``received``)."""
        if not messages:
            return []
        keys = {(m.channel, message_key(m.msg_id)) for m in messages}
        with self._engine.connect() as conn:
            waiting = {
                (row.channel, row.msg_id)
                for row in conn.execute(
                    select(channel_messages.c.channel, channel_messages.c.msg_id).where(
                        channel_messages.c.msg_id.in_([k for _, k in keys]),
                        channel_messages.c.status == "received",
                    )
                )
            }
        return [m for m in messages if (m.channel, message_key(m.msg_id)) in waiting]

    def mark(self, channel: str, msg_id: str, status: str, user_id: str | None = None) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                update(channel_messages)
                .where(
                    channel_messages.c.channel == channel, channel_messages.c.msg_id == message_key(msg_id)
                )
                .values(status=status, user_id=user_id, done_at=datetime.now(UTC))
            )
