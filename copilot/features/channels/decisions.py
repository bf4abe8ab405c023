"""Suggestions in a chat: shown as cards or numbered text, then applied or dismissed exactly once.

「确认 N」/「忽略 N」 refer to the numbering last shown to that chat account, kept in the database
(``channel_shown``) because the reply may reach another process; a card button carries the id itself.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from connectors.channels.base import Channel, ChannelError, InboundMessage
from copilot.domain import User
from copilot.errors import AppError
from copilot.features.channels.render import (
    ALREADY_APPLIED,
    APPLIED,
    DISMISSED,
    NO_SUCH_SUGGESTION,
    NO_SUGGESTIONS,
    clip,
    numbered_suggestions,
    send,
    suggestion_card,
    tap_to_send,
)
from copilot.storage import tables as t

logger = logging.getLogger(__name__)

MAX_CARD_SUGGESTIONS = 5
COMMAND = re.compile(r"^\s*(确认|采纳|忽略)\s*(\d{1,2})\s*$")
BUTTON = re.compile(r"^(apply|dismiss):(sg_[0-9a-f]{1,64})$")


class Decisions:
    def __init__(self, engine: Engine, suggester: Callable[[], Any]) -> None:
        self._engine = engine
        self._suggester = suggester

    # -- showing ---------------------------------------------------------------------------------
    def show(self, channel: Channel, message: InboundMessage, user: User, suggestions: list[dict]) -> None:
        """WeCom: one template card per suggestion (采纳/忽略 buttons); DingTalk: action cards whose
        buttons send 「确认 N」/「忽略 N」; else numbered text."""
        shown = [s for s in suggestions if s.get("id")][:MAX_CARD_SUGGESTIONS]
        self.remember_shown(message, [s["id"] for s in shown])
        if not shown:
            send(channel, message, NO_SUGGESTIONS)
            return
        send_card = getattr(channel, "send_card", None)
        send_action_card = getattr(channel, "send_action_card", None)
        if send_card is not None:
            for s in shown:
                send_card(message, suggestion_card(s))
        elif send_action_card is not None:
            for i, s in enumerate(shown, start=1):
                title = f"{i}. {clip(s.get('title') or '跟进建议', 40)}"
                text = f"**{title}**\n\n{clip(s.get('rationale') or '', 300)}"
                send_action_card(message, title, text, [("采纳", tap_to_send(f"确认 {i}")),
                                                        ("忽略", tap_to_send(f"忽略 {i}"))])  # fmt: skip
        else:
            send(channel, message, numbered_suggestions(shown))
        try:
            self._suggester().store.mark_shown(user.id, [s["id"] for s in shown], channel=message.channel)
        except Exception as exc:  # logging for adoption is extra; the rep already has the cards
            logger.warning("suggestions shown on %s not logged: %s", message.channel, type(exc).__name__)

    def remember_shown(self, message: InboundMessage, ids: list[str]) -> None:
        """The numbering 「确认 N」 refers to, in the database: the reply may come on another process."""
        key = {"channel": message.channel, "sender_id": message.sender_id[:128]}
        now = datetime.now(UTC)
        shown = t.channel_shown.c
        with self._engine.begin() as conn:
            done = conn.execute(
                update(t.channel_shown)
                .where(shown.channel == key["channel"], shown.sender_id == key["sender_id"])
                .values(suggestion_ids=ids, updated_at=now)
            ).rowcount
            if not done:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            insert(t.channel_shown).values(**key, suggestion_ids=ids, updated_at=now)
                        )
                except IntegrityError:  # shown concurrently on another process: the later list wins
                    conn.execute(
                        update(t.channel_shown)
                        .where(shown.channel == key["channel"], shown.sender_id == key["sender_id"])
                        .values(suggestion_ids=ids, updated_at=now)
                    )

    def last_shown(self, channel: str, sender_id: str) -> list[str]:
        shown = t.channel_shown.c
        with self._engine.connect() as conn:
            ids = conn.execute(
                select(shown.suggestion_ids).where(
                    shown.channel == channel, shown.sender_id == sender_id[:128]
                )
            ).scalar_one_or_none()
        return list(ids or [])

    # -- deciding ----------------------------------------------------------------------------------
    def command(self, channel: Channel, message: InboundMessage, user: User, verb: str, n: int) -> None:
        """「确认 N」/「忽略 N」: the N-th suggestion last shown to this account."""
        ids = self.last_shown(message.channel, message.sender_id)
        if not 1 <= n <= len(ids):
            send(channel, message, NO_SUCH_SUGGESTION.format(n=n))
            return
        self.decide(channel, message, user, "dismiss" if verb == "忽略" else "apply", ids[n - 1])

    def decide(self, channel: Channel, message: InboundMessage, user: User, action: str, sid: str) -> None:
        suggester = self._suggester()
        row = suggester.store.get(sid)
        if row is None or row.user_id != user.id:
            send(channel, message, "建议不存在。")
            return
        try:
            if action == "apply":
                if row.status == "applied":  # a second press: the CRM change was made once already
                    update_card(channel, message, "已采纳")
                    send(channel, message, ALREADY_APPLIED.format(title=row.title))
                    return
                outcome = suggester.apply(user, sid, channel=message.channel)
                update_card(channel, message, "已采纳")
                # two presses at once: the idempotency key lets one write through, the other is told so
                duplicate = (outcome.get("result") or {}).get("duplicate")
                send(channel, message, (ALREADY_APPLIED if duplicate else APPLIED).format(title=row.title))
            else:
                if row.status != "dismissed":
                    suggester.store.feedback(user.id, sid, "dismiss", comment=None, edited=None,
                                             channel=message.channel)  # fmt: skip
                update_card(channel, message, "已忽略")
                send(channel, message, DISMISSED.format(title=row.title))
        except AppError as error:
            send(channel, message, error.detail)
        logger.info("%s suggestion %s %s by user %s", message.channel, sid, action, user.id)


def update_card(channel: Channel, message: InboundMessage, label: str) -> None:
    """Mark the pressed card as done; the text reply follows anyway, so a failure is only logged."""
    update_fn = getattr(channel, "update_card", None)
    if update_fn is None or not message.response_code:
        return
    try:
        update_fn(message, label)
    except ChannelError as exc:
        logger.warning("%s card of message %s not updated: %s", message.channel, message.msg_id, exc.code)
