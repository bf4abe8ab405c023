"""One conversation turn answered with tools: the engine's ``_Turn`` (its user, visible customers,
state and message) wired to a ``ToolBox`` and run through ``tool_loop``.

The answer keeps the turn's intent; a change the model proposed becomes the conversation's pending
change (confirmed or dismissed by the rep on the next turn, as offline). Raises ``ToolLoopFailed``.
"""

from __future__ import annotations

from typing import Any

from connectors.crm.base import CustomerSnapshot
from copilot.agent.citations import short_name
from copilot.agent.facts import customer_facts
from copilot.domain import ChatAnswer
from copilot.errors import AppError
from copilot.features.chat import tool_loop
from copilot.features.chat.commands import describe
from copilot.features.chat.tools import ToolBox
from copilot.infra.llm.chat_model import CHAT

_WEEKDAYS = "一二三四五六日"


def answer(turn: Any, intent: str, customer: str | None) -> tuple[ChatAnswer, dict[str, Any] | None]:
    """(the answer, the proposed change or None) for ``turn`` (a conversation ``_Turn``)."""
    conv, user, day = turn.conv, turn.user, turn.day
    llm = conv._llm
    suggester = conv.suggester()
    memos = suggester.memos if suggester is not None else None

    def snapshot(cid: str) -> CustomerSnapshot | None:
        try:
            return conv.snapshot(user, cid)
        except AppError:
            return None  # unknown and not visible: the same answer

    def resolve(text: str) -> str | None:
        if text in turn.names:
            return text
        ids = list(dict.fromkeys(m.id for m in turn.linker.resolve(text)))
        return ids[0] if len(ids) == 1 else None

    def suggestions(cid: str) -> list[Any]:
        plan = turn._plan(cid)
        return list(plan.suggestions) if plan else []

    box = ToolBox(search=lambda q: conv.search(user, q), snapshot=snapshot, resolve=resolve,
                  facts=lambda snap: customer_facts(snap, memos.done_memos(snap.id) if memos else [], day),
                  suggestions=suggestions, day=day, user_id=user.id)  # fmt: skip
    context = f"今天是 {day.isoformat()}（周{_WEEKDAYS[day.weekday()]}）。"
    if customer:
        context += f"当前讨论的客户：{turn.names.get(customer, customer)}（{customer}）。"
    if intent == "command":
        context += "销售在请求一项 CRM 变更：请用 propose_change 提出，等待销售确认。"
    timeout = getattr(llm, "timeout_for", lambda _p: 30.0)(CHAT)
    result = tool_loop.run(llm, message=turn.message, context=context,
                           history=tool_loop.history_messages(turn.state.turns), toolbox=box, timeout_s=timeout,
                           needs_citations=intent != "command", max_rounds=conv._max_tool_rounds,
                           on_delta=turn.on_delta)  # fmt: skip
    llm.record(tool_loop.PATH, "accepted")
    text, change = result.text, box.proposed
    if change is not None:
        turn.state.pending = change
        turn.state.focus_customer_id = cid = change["customer_id"]
        line = f"将{describe(change, short_name(turn.names.get(cid, cid)))}。回复「确认」写入 CRM，回复「算了」取消。"
        text = f"{text}\n\n{line}" if text else line
    if box.shown_suggestions:
        turn.state.suggestion_ids = [s.id for s in box.shown_suggestions]
    shown = ChatAnswer(
        text, result.citations, tuple(box.shown_suggestions), mode="llm", dropped_citations=result.dropped
    )
    return shown, change
