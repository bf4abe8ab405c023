"""Inbound message → reply with citations (and, when about a customer, suggestions).

Channels (web, WeCom, DingTalk) only deliver text here; this module decides what to answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine, insert

from connectors.crm.base import CRM
from copilot.access import customer_for
from copilot.agent.answer import llm_answer, offline_answer
from copilot.agent.safety import looks_like_injection
from copilot.domain import ChatAnswer, User
from copilot.errors import AppError
from copilot.llm.chat_model import ChatModel
from copilot.storage import tables as t
from copilot.users import UserDirectory

if TYPE_CHECKING:
    from knowledge_base.base import KnowledgeBase

logger = logging.getLogger(__name__)
MAX_MESSAGE_CHARS = 2000


class Conversation:
    def __init__(
        self,
        *,
        engine: Engine,
        users: UserDirectory,
        crm: CRM,
        kb: Callable[[], KnowledgeBase],
        llm: ChatModel | None,
        k: int = 4,
    ) -> None:
        self._engine = engine
        self._users = users
        self._crm = crm
        self._kb = kb
        self._llm = llm
        self._k = k

    def reply(self, user: User, message: str, *, customer_id: str | None = None) -> ChatAnswer:
        message = (message or "").strip()
        if not message:
            raise AppError("validation_error", "消息内容不能为空。")
        if len(message) > MAX_MESSAGE_CHARS:
            raise AppError("validation_error", f"消息过长（最多 {MAX_MESSAGE_CHARS} 字）。")
        if customer_id:
            customer_for(user, customer_id, crm=self._crm, users=self._users)  # 404 / 403 before any work
        hits = self._kb().search(message, k=self._k + 2, visible_teams=self._users.visible_teams(user))
        safe = [h for h in hits if not looks_like_injection(h.chunk.text)]
        if len(safe) < len(hits):
            logger.info("skipped %d instruction-like passages", len(hits) - len(safe))
        hits = safe[: self._k]
        answer = llm_answer(message, hits, self._llm) if self._llm else offline_answer(message, hits)
        self._remember(user, customer_id, message, answer)
        return answer

    def _remember(self, user: User, customer_id: str | None, message: str, answer: ChatAnswer) -> None:
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            conn.execute(
                insert(t.chat_messages),
                [
                    {"user_id": user.id, "customer_id": customer_id, "role": "user", "content": message, "created_at": now},
                    {"user_id": user.id, "customer_id": customer_id, "role": "assistant", "content": answer.answer, "created_at": now},
                ],
            )
