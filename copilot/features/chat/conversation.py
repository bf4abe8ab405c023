"""Inbound message → reply with citations (and, when about a customer, suggestions).

Channels (web, WeCom, DingTalk) only deliver text here; this module decides what to answer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine, insert, select

from connectors.crm.base import CRM
from copilot.agent.answer import llm_answer, offline_answer
from copilot.agent.safety import looks_like_injection
from copilot.domain import ChatAnswer, User
from copilot.errors import AppError
from copilot.identity.access import customer_for
from copilot.identity.users import UserDirectory
from copilot.infra.llm.chat_model import ChatModel
from copilot.storage import tables as t

if TYPE_CHECKING:
    from copilot.features.suggestions.suggester import Suggester
    from knowledge_base.base import KnowledgeBase

logger = logging.getLogger(__name__)
MAX_MESSAGE_CHARS = 2000
_NEXT_STEP = re.compile(r"下一步|怎么跟|如何跟|跟进|该做什么|怎么推进|建议")


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
        suggester: Callable[[], Suggester] | None = None,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        self._on_dropped = on_dropped
        self._suggester_factory = suggester
        self._suggester_built: Suggester | None = None
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
        target = customer_id or self._named_customer(user, message)
        hits = self._kb().search(message, k=self._k + 2, visible_teams=self._users.visible_teams(user))
        safe = [h for h in hits if not looks_like_injection(h.chunk.text)]
        if len(safe) < len(hits):
            logger.info("skipped %d instruction-like passages", len(hits) - len(safe))
        hits = safe[: self._k]
        answer = llm_answer(message, hits, self._llm) if self._llm else offline_answer(message, hits)
        if answer.dropped_citations and self._on_dropped is not None:
            self._on_dropped(answer.dropped_citations)
        if target:
            answer = self._with_suggestions(user, target, message, answer)
        self._remember(user, target, message, answer)
        return answer

    # -- a customer's suggestions in the chat ---------------------------------------------------

    def _suggester(self) -> Suggester | None:
        if self._suggester_built is None and self._suggester_factory is not None:
            self._suggester_built = self._suggester_factory()
        return self._suggester_built

    def _named_customer(self, user: User, message: str) -> str | None:
        """The visible customer a message names (``华星电子下一步怎么跟？``), if exactly one matches best."""
        from copilot.agent.citations import short_name
        from copilot.identity.access import customers_for

        best: dict[str, int] = {}
        for c in customers_for(user, crm=self._crm, users=self._users):
            short = short_name(c.name)
            keys = {
                c.name,
                short,
                short[:4] if len(short) >= 4 else "",
                short[2:6] if len(short) >= 6 else "",
            }
            score = max((len(k) for k in keys if len(k) >= 2 and k in message), default=0)
            if score:
                best[c.id] = score
        if not best:
            return None
        top = max(best.values())
        winners = [cid for cid, sc in best.items() if sc == top]
        return winners[0] if len(winners) == 1 else None

    def _with_suggestions(self, user: User, customer_id: str, message: str, answer: ChatAnswer) -> ChatAnswer:
        suggester = self._suggester()
        if suggester is None:  # no agent wired (the chat still answers from the knowledge base)
            return answer
        plan = suggester.for_customer(user, customer_id, channel="chat")
        suggestions = tuple(plan.suggestions)
        if not suggestions or not _NEXT_STEP.search(message):
            return replace(answer, suggestions=suggestions)
        lines = ["建议的下一步："]
        citations = []
        for i, sg in enumerate(suggestions, start=1):
            lines.append(f"{i}. {sg.title}")
            lines.append(f"   {sg.rationale}")
            for c in sg.citations[:2]:
                lines.append(f"   —— {c.label}")
                if c not in citations:
                    citations.append(c)
        return ChatAnswer("\n".join(lines), tuple(citations), suggestions, mode=plan.mode, note=plan.note)

    def history(self, user: User, *, customer_id: str | None = None, limit: int = 50) -> list[dict]:
        """The user's own recent chat turns, oldest first (never another user's)."""
        stmt = select(t.chat_messages).where(t.chat_messages.c.user_id == user.id)
        if customer_id:
            stmt = stmt.where(t.chat_messages.c.customer_id == customer_id)
        stmt = stmt.order_by(t.chat_messages.c.id.desc()).limit(limit)
        with self._engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [
            {"role": r["role"], "content": r["content"], "customer_id": r["customer_id"],
             "created_at": r["created_at"].isoformat() if r["created_at"] else None}
            for r in reversed(rows)
        ]  # fmt: skip

    def _remember(self, user: User, customer_id: str | None, message: str, answer: ChatAnswer) -> None:
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            conn.execute(
                insert(t.chat_messages),
                [
                    {
                        "user_id": user.id,
                        "customer_id": customer_id,
                        "role": "user",
                        "content": message,
                        "created_at": now,
                    },
                    {
                        "user_id": user.id,
                        "customer_id": customer_id,
                        "role": "assistant",
                        "content": answer.answer,
                        "created_at": now,
                    },
                ],
            )
