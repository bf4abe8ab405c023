"""A voice message becomes a memo of the rep: stored at once, processed as a job, then summarised in
the chat with the visit record, the draft visit log and the suggestion cards."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from connectors.channels.base import Channel, ChannelError, InboundMessage, MediaTooLarge
from copilot.domain import User
from copilot.errors import AppError
from copilot.features.channels.render import ASK_CUSTOMER, FAILED, MEMO_FAILED, send, summarize, try_send
from copilot.identity.access import customer_for

if TYPE_CHECKING:
    from connectors.crm.base import CRM
    from copilot.features.channels.decisions import Decisions
    from copilot.features.memos.pipeline import MemoPipeline
    from copilot.identity.users import UserDirectory
    from copilot.infra.jobs import JobQueue

logger = logging.getLogger(__name__)


class VoiceMemos:
    def __init__(
        self,
        *,
        memos: Callable[[], MemoPipeline],
        crm: CRM,
        users: UserDirectory,
        jobs: Callable[[], JobQueue],
        channel: Callable[[str], Channel],
        decisions: Decisions,
    ) -> None:
        self._memos = memos
        self._crm = crm
        self._users = users
        self._jobs = jobs
        self._channel = channel
        self._decisions = decisions

    def take(self, user: User, message: InboundMessage, audio: bytes) -> None:
        """Store the audio as a memo without a customer yet (found in the transcript later), queue it."""
        pipeline = self._memos()
        if len(audio) > pipeline.max_bytes:
            raise MediaTooLarge("语音文件过大", channel=message.channel)
        when = datetime.fromtimestamp(message.created_at, UTC) if message.created_at else datetime.now(UTC)
        memo_id = pipeline.repo.create(customer_id=None, user_id=user.id, recorded_at=when.astimezone(),
                                       data=audio)  # fmt: skip
        logger.info(
            "memo %s from %s message %s (%d bytes)", memo_id, message.channel, message.msg_id, len(audio)
        )
        self._jobs().submit("channel_memo", message, user.id, memo_id)

    def process(self, message: InboundMessage, user_id: str, memo_id: str) -> None:
        """The ``channel_memo`` job: transcribe, extract, link the customer, suggest, reply."""
        user = self._users.get(user_id)
        if user is None:  # the account was removed meanwhile: nothing to answer
            logger.warning("memo %s: user %s no longer exists", memo_id, user_id)
            return
        channel = self._channel(message.channel)
        pipeline = self._memos()
        try:
            pipeline.process(memo_id)
            row = pipeline.row(memo_id)
            if row.status != "done":
                send(channel, message, MEMO_FAILED.format(message=(row.error or {}).get("message", "")))
                return
            visit = dict(row.visit_record or {})
            visit.pop("suggestions", None)
            customer = self._matched_customer(visit, user)
            if customer is None:
                text = summarize(visit, row.transcript) + "\n\n" + ASK_CUSTOMER.format(memo_id=memo_id)
                send(channel, message, text)
                return
            pipeline.repo.update(memo_id, customer_id=customer[0])
            pipeline.add_suggestions(memo_id, visit)  # suggestions now that the memo has its customer
            view = pipeline.to_json(pipeline.row(memo_id))
            send(
                channel,
                message,
                summarize(visit, row.transcript, customer_name=customer[1], draft=view["draft"]),
            )
            self._decisions.show(channel, message, user, list(view["suggestions"] or []))
        except Exception as exc:
            logger.error("memo %s from %s message %s failed: %s", memo_id, message.channel, message.msg_id,
                         type(exc).__name__, exc_info=not isinstance(exc, ChannelError))  # fmt: skip
            try_send(channel, message, FAILED)

    def correct(self, channel: Channel, message: InboundMessage, user: User, text: str) -> None:
        """「更正：…」: the rep's own transcript of their latest memo; the record and draft are made again."""
        pipeline = self._memos()
        memo_id = pipeline.repo.latest_of(user.id)
        if memo_id is None:
            send(channel, message, "没有找到可以更正的语音纪要。")
            return
        try:
            view = pipeline.correct(user, memo_id, text=text)
        except AppError as error:
            send(channel, message, error.detail)
            return
        visit = dict(view.get("visit_record") or {})
        visit.pop("suggestions", None)
        send(
            channel,
            message,
            "已按您的更正重新整理：\n" + summarize(visit, view["transcript"]["text"], draft=view["draft"]),
        )

    def _matched_customer(self, visit: dict[str, Any], user: User) -> tuple[str, str] | None:
        """The customer the extractor matched, if the rep may see it."""
        found = visit.get("customer") or {}
        cid = found.get("id") if isinstance(found, dict) else None
        if not cid:
            return None
        try:
            snapshot = customer_for(user, cid, crm=self._crm, users=self._users)
        except AppError:
            return None
        return cid, getattr(snapshot, "name", None) or found.get("name") or cid
