"""The conversation engine behind web chat, ``/api/chat``, WeCom and DingTalk (DESIGN §5.7).

One turn: open the conversation's state → resolve which customer the message is about (named, by a
homophone or typo, through a contact, or carried over: 「他们」) among the customers the user may see →
classify the intent → answer (knowledge with citations, a customer briefing, its next steps, a proposed
CRM change, a confirmation that writes through the idempotent outbox) → save the state.

With an LLM, knowledge, customer and command turns are first answered by the model calling tools
(``tool_turn``: search_kb, get_customer, list_suggestions, propose_change, run as the user); if that
fails the turn is answered as without tools (single-shot LLM answer, then offline).

Nothing is written to the CRM until the rep confirms; confirming twice writes once. A customer the
user may not see is never matched, so it is never confirmed, described or said to exist.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, insert, select

from connectors.crm.base import CRM, CustomerSnapshot
from copilot.agent.answer import NOTES, llm_answer
from copilot.agent.citations import short_name
from copilot.agent.facts import customer_facts
from copilot.agent.linker import Entity, EntityLinker, Match
from copilot.agent.safety import looks_like_injection
from copilot.domain import ChatAnswer, User
from copilot.errors import AppError
from copilot.features.chat import answers, tool_loop, tool_turn
from copilot.features.chat.commands import crm_change, describe, parse_command
from copilot.features.chat.intents import Intent, bare, classify
from copilot.features.chat.state import ConversationStore, State
from copilot.features.writeback.apply import apply_change
from copilot.identity.access import customer_for, customers_for
from copilot.identity.users import UserDirectory
from copilot.infra.llm.chat_model import ChatModel
from copilot.storage import tables as t
from copilot.voice.extract.dates import resolve_due
from copilot.voice.extract.lexicon import SURNAMES

if TYPE_CHECKING:
    from copilot.features.suggestions.suggester import Suggester
    from knowledge_base.base import KnowledgeBase

logger = logging.getLogger(__name__)
MAX_MESSAGE_CHARS = 2000
_PRONOUN = re.compile(
    r"他们|她们|这家|那家|该客户|这个客户|那个客户|对方|他家|人家|^(她|他)|(她|他)(说|们|那边|提|问|想|要|觉得)"
)
_CUSTOMER_ID = re.compile(r"\bc_[a-z0-9_]{2,40}\b")
_SOMEONES = re.compile(
    r"^(那)?[\u4e00-\u9fffA-Za-z]{2,8}(的|那边)(.{1,3}(总|经理|部长|主任|总监|工)|二期|三期|商机|项目|报价|合同)"
)
# 「百佳惠最近怎么样」: a name-like subject before the question (not 「下一步怎么跟进」, 「帮我建个任务」)
_NAMES_SOMETHING = re.compile(
    r"^(?!下一步|接下来|最近|帮我|帮忙|请|麻烦|给我|我们|我|这个|那个|他们|客户)[\u4e00-\u9fffA-Za-z0-9_]{2,16}?"
    r"(那边|这边|公司|的)?(最近|现在|目前|近况|情况|进展|下一步|怎么样|怎么跟|状态)"
)

# 「瀚海电器的私有化项目谈到哪了？」: an organisation's name first — a customer, maybe one the user may
# not see. Never answered about the customer in focus; the same reply as for a name that does not exist.
_ORG_NAME = re.compile(
    r"^(那个|那家|这个|这家)?(?!公立|私立|民营|三甲|三级|二级|大型|中小|头部|同行|其他|别的|我们|你们|他们|那个|这个|那家|这家|一个|一家|某个|哪个|哪家)"
    r"[\u4e00-\u9fff]{2,6}?(科技|电器|电子|电气|医院|保健院|卫生院|集团|公司|物流|教育|精密|新能源|制造|药业|医药|"
    r"银行|学校|大学|学院|职院|职校|中学|小学|教育局|商贸|贸易|食品|汽车|机械|实业|能源|网络|软件|信息|传媒|地产|超市|工厂|股份)"
    r"(的|那边|这边|那个|那笔|要|在|用|现在|最近|目前)"
)

# 「罗部长那边…」: someone by surname and title, first in the message
_PERSON = re.compile(
    rf"^[{''.join(sorted(SURNAMES))}](总经理|总监|总|董|经理|部长|主任|科长|厂长|院长|校长|馆长|处长|局长|主管|工)"
    r"(那边|这边|的|说|有没有|还|又|最近|上次|跟|和|是不是|要)"
)

SMALLTALK = "您好！我是销售副驾。可以问我话术和政策（如「客户嫌贵怎么回？」）、客户近况（「华星最近怎么样？」）、下一步建议，或让我帮您建任务、记拜访（确认后才写入 CRM）。"
THANKS = "不客气！还有什么需要，随时问我。"
OUT_OF_SCOPE = (
    "这个问题超出了我的范围。我能帮您查话术、政策和案例，看客户近况和下一步建议，或者建任务、记拜访。"
)
NOTHING_PENDING = "当前没有待确认的操作。需要我做什么，可以直接说，例如「帮我给华星建个任务：周五前发报价」。"
NOTHING_TO_DISMISS = "好的，当前没有待确认的操作。"
WHICH_CUSTOMER = "请问是哪位客户？请说客户名称或简称。"
UNKNOWN_CUSTOMER = "没有找到您可以查看的这位客户。请确认客户名称，或在客户列表中选择。"


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
        on_failed: Callable[[dict[str, Any]], None] | None = None,
        idle_minutes: float = 120,
        tools: bool = True,
        max_tool_rounds: int = tool_loop.MAX_ROUNDS,
    ) -> None:
        self._max_tool_rounds = max_tool_rounds
        self._tools_ok = tools  # False once the endpoint refused ``tools``: single-shot answers from then on
        self._ignored_tools = 0  # consecutive turns the model answered without calling a tool
        self._on_dropped = on_dropped
        self._on_failed = on_failed
        self._suggester_factory = suggester
        self._suggester_built: Suggester | None = None
        self._engine = engine
        self._users = users
        self._crm = crm
        self._kb = kb
        self._llm = llm
        self._k = k
        self.store = ConversationStore(engine, idle_minutes=idle_minutes)

    # -- one turn ----------------------------------------------------------------------------------
    def reply(self, user: User, message: str, *, customer_id: str | None = None, conversation_id: str | None = None,
              channel_key: str | None = None, as_of: str | date | None = None,
              on_delta: Callable[[str], None] | None = None) -> ChatAnswer:  # fmt: skip
        """One turn; ``on_delta`` receives the answer's text as a model streams it (LLM turns only)."""
        message = (message or "").strip()
        if not message:
            raise AppError("validation_error", "消息内容不能为空。")
        if len(message) > MAX_MESSAGE_CHARS:
            raise AppError("validation_error", f"消息过长（最多 {MAX_MESSAGE_CHARS} 字）。")
        if any("\x00" in (v or "") for v in (message, customer_id, conversation_id, channel_key)):
            raise AppError("invalid_value")  # a database cannot store NUL: refuse before anything is stored
        if customer_id:
            customer_for(user, customer_id, crm=self._crm, users=self._users)  # 404 / 403 before any work
        day = _day(as_of)
        state = self.store.open(user.id, conversation_id=conversation_id, channel_key=channel_key)
        turn = _Turn(self, user, state, message, day)
        turn.on_delta = on_delta
        if customer_id:
            state.focus_customer_id = customer_id
            turn.picked = customer_id
        answer = turn.run()
        answer = replace(answer, conversation_id=state.id)
        state.remember("user", message, answer.intent, answer.customer_id)
        state.remember("assistant", answer.answer, answer.intent, answer.customer_id)
        self.store.save(state)
        if answer.dropped_citations and self._on_dropped is not None:
            self._on_dropped(answer.dropped_citations)
        self._remember(user, answer.customer_id, message, answer)
        return answer

    # -- collaborators -------------------------------------------------------------------------------
    def suggester(self) -> Suggester | None:
        if self._suggester_built is None and self._suggester_factory is not None:
            self._suggester_built = self._suggester_factory()
        return self._suggester_built

    def linker(self, user: User) -> tuple[EntityLinker, dict[str, str]]:
        """A linker over the customers ``user`` may see (and their contacts), and id → name."""
        entities, names = [], {}
        for summary in customers_for(user, crm=self._crm, users=self._users):
            snap = self._crm.get_customer(summary.id)
            if snap is None:
                continue
            aliases = snap.custom.get("aliases") if isinstance(getattr(snap, "custom", None), dict) else None
            entities.append(Entity(snap.id, snap.name, tuple(a for a in aliases or () if isinstance(a, str)),
                                   tuple(c.name for c in snap.contacts)))  # fmt: skip
            names[snap.id] = snap.name
        return EntityLinker(entities), names

    def snapshot(self, user: User, customer_id: str) -> CustomerSnapshot:
        return customer_for(user, customer_id, crm=self._crm, users=self._users)

    def search(self, user: User, query: str) -> list[Any]:
        kb = self._kb()
        if kb is None:
            return []
        hits = kb.search(query, k=self._k + 2, visible_teams=self._users.visible_teams(user))
        safe = [h for h in hits if not looks_like_injection(h.chunk.text)]
        if len(safe) < len(hits):
            logger.info("skipped %d instruction-like passages", len(hits) - len(safe))
        return safe[: self._k]

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
        rows = [{"user_id": user.id, "customer_id": customer_id, "role": role, "content": content, "created_at": now}
                for role, content in (("user", message), ("assistant", answer.answer))]  # fmt: skip
        with self._engine.begin() as conn:
            conn.execute(insert(t.chat_messages), rows)


def _day(as_of: str | date | None) -> date:
    if isinstance(as_of, date):
        return as_of
    if as_of:
        try:
            return date.fromisoformat(str(as_of)[:10])
        except ValueError:
            raise AppError("validation_error", f"as_of 日期格式应为 YYYY-MM-DD：{as_of}") from None
    return datetime.now().astimezone().date()


class _Turn:
    """The work of one message (kept apart from the engine so each step reads on its own)."""

    def __init__(self, conv: Conversation, user: User, state: State, message: str, day: date) -> None:
        self.conv, self.user, self.state, self.message, self.day = conv, user, state, message, day
        self.picked: str | None = None  # chosen by the picker (customer_id in the request)
        self.on_delta: Callable[[str], None] | None = None
        self.linker, self.names = conv.linker(user)

    def run(self) -> ChatAnswer:
        matches = self._mentions(self.message)
        text = bare(self.message)
        just_a_name = bool(matches) and len(text) - max(len(m.surface) for m in matches) <= 3
        # about a customer: one in focus (他们, a follow-up, or no other subject), or someone we cannot match
        names_other = bool(
            _names_unknown(self.message) or _SOMEONES.match(self.message) or _CUSTOMER_ID.search(self.message)
        )
        about = names_other or (bool(self.state.focus_customer_id) and not matches)
        intent = classify(self.message, clarifying=bool(self.state.clarify), pending=bool(self.state.pending),
                          named=bool(matches), just_a_name=just_a_name, about_customer=about)  # fmt: skip
        if intent.name == "clarify_answer":
            return self._clarified(intent, matches)
        self.state.clarify = None
        if intent.name in ("confirm", "dismiss"):
            return self._decide(intent)
        if intent.verb == "amend" and self.state.pending:
            return self._amend(intent)
        if intent.name == "smalltalk":
            text = THANKS if re.search(r"谢|感谢|辛苦", self.message) else SMALLTALK
            return self._answer(ChatAnswer(text, ()), intent, self.state.focus_customer_id)
        if intent.name == "out_of_scope":
            return self._answer(ChatAnswer(OUT_OF_SCOPE, ()), intent, None)
        customer, ask = self._customer(
            matches, needs=intent.name in ("customer_status", "next_steps", "command")
        )
        if ask is not None:
            self.state.clarify = {**ask, "message": self.message, "intent": intent.name}
            shown = _public(ask) if ask["options"] else None  # options only when a name was ambiguous
            return self._answer(ChatAnswer(ask["question"], ()), intent, None, clarify=shown)
        return self._respond(intent, customer)

    # -- customers ---------------------------------------------------------------------------------
    def _mentions(self, text: str) -> list[Match]:
        found = self.linker.resolve(text)
        for cid in _CUSTOMER_ID.findall(text):  # an id typed out: only if visible
            if cid in self.names and all(m.id != cid for m in found):
                found.append(Match(cid, cid, "id", 1.0))
        return found

    def _customer(self, matches: list[Match], *, needs: bool) -> tuple[str | None, dict[str, Any] | None]:
        """The customer of this turn, or the clarification to ask (several matches; none when needed)."""
        if self.picked:
            return self.picked, None
        ids = list(dict.fromkeys(m.id for m in matches))
        if len(ids) == 1:
            self.state.focus_customer_id = ids[0]
            return ids[0], None
        if len(ids) > 1:
            options = [
                {"n": i, "label": short_name(self.names[cid]), "customer_id": cid}
                for i, cid in enumerate(ids[:5], 1)
            ]
            lines = "；".join(f"{o['n']}. {o['label']}" for o in options)
            return None, {"question": f"您说的是哪一家？{lines}（回复序号或名称）", "options": options}
        focus = self.state.focus_customer_id
        if focus and focus not in self.names:  # no longer visible
            focus = self.state.focus_customer_id = None
        unknown = _names_unknown(self.message) and not _PRONOUN.search(self.message)
        if unknown:
            focus = None  # it names someone we cannot match: never answer about another customer
        if focus and (needs or _PRONOUN.search(self.message) or self._follows_up()):
            return focus, None
        if needs:
            question = UNKNOWN_CUSTOMER if unknown else WHICH_CUSTOMER
            return None, {"question": question, "options": []}
        return None, None

    def _follows_up(self) -> bool:
        return bool(self.state.turns) and bool(
            re.match(r"^(那|那么|如果|要是|万一|还有|另外|再)", self.message)
        )

    def _clarified(self, intent: Intent, matches: list[Match]) -> ChatAnswer:
        ask = self.state.clarify or {}
        options = ask.get("options") or []
        chosen = None
        if intent.number is not None:
            chosen = next((o["customer_id"] for o in options if o["n"] == intent.number), None)
        elif matches:
            ids = [m.id for m in matches]
            chosen = next((o["customer_id"] for o in options if o["customer_id"] in ids), None) or (
                ids[0] if len(ids) == 1 else None
            )
        if chosen is None:
            return self._answer(ChatAnswer(ask.get("question") or WHICH_CUSTOMER, ()), intent, None,
                                clarify=_public(ask) if options else None)  # fmt: skip
        self.state.clarify = None
        self.state.focus_customer_id = chosen
        original = ask.get("message") or ""
        again = classify(original, named=True)
        self.message = original or self.message
        answer = self._respond(again, chosen)
        # picking one of the options offered is a clarify answer; naming the customer we asked for is the question
        return replace(answer, intent="clarify_answer" if options else answer.intent)

    # -- answers -------------------------------------------------------------------------------------
    def _respond(self, intent: Intent, customer: str | None) -> ChatAnswer:
        llm = self.conv._llm
        if (
            intent.name in _TOOL_INTENTS
            and self.conv._tools_ok
            and callable(getattr(llm, "chat_tools", None))
        ):
            try:
                answer = self._with_tools(intent, customer)
                self.conv._ignored_tools = 0
                return answer
            except tool_loop.ToolLoopFailed as exc:
                logger.info("tool-calling answer failed (%s); answering without tools", exc.reason)
                llm.record(tool_loop.PATH, exc.reason)  # type: ignore[union-attr]
                self.conv._ignored_tools = (
                    self.conv._ignored_tools + 1 if exc.reason == "no_tool_calls" else 0
                )
                if exc.reason == "tools_unsupported" or self.conv._ignored_tools >= IGNORED_TOOLS_LIMIT:
                    logger.info("not offering tools to this endpoint any more (%s)", exc.reason)
                    self.conv._tools_ok = False
                elif exc.reason != "no_tool_calls":
                    return self._without_tools(
                        intent, customer, offline_note=NOTES.get(exc.reason, NOTES["unavailable"])
                    )
        return self._without_tools(intent, customer)

    def _without_tools(
        self, intent: Intent, customer: str | None, offline_note: str | None = None
    ) -> ChatAnswer:
        if offline_note is not None and intent.name not in ("command", "customer_status", "next_steps"):
            hits = self.conv.search(self.user, self.message)
            answer = answers.knowledge_answer(self.message, hits, note=offline_note)
            return self._answer(answer, Intent("ask_knowledge"), customer)
        if intent.name == "command":
            return self._command(intent, customer)
        if intent.name == "customer_status" and customer:
            return self._status(intent, customer)
        if intent.name == "next_steps" and customer:
            return self._next_steps(intent, customer)
        return self._knowledge(
            intent if intent.name == "ask_knowledge" else Intent("ask_knowledge"), customer
        )

    def _with_tools(self, intent: Intent, customer: str | None) -> ChatAnswer:
        answer, change = tool_turn.answer(self, intent.name, customer)
        return self._answer(
            answer, intent, change["customer_id"] if change else customer, proposed_change=change
        )

    def _knowledge(self, intent: Intent, customer: str | None) -> ChatAnswer:
        hits = self.conv.search(self.user, self.message)
        if self.conv._llm is not None:
            answer = llm_answer(self.message, hits, self.conv._llm)
            if answer.mode != "llm":  # the model failed: the colleague-style offline answer, with the reason
                answer = replace(answers.knowledge_answer(self.message, hits, note=answer.note),
                                 dropped_citations=answer.dropped_citations)  # fmt: skip
        else:
            answer = answers.knowledge_answer(self.message, hits)
        return self._answer(answer, intent, customer)

    def _facts(self, customer: str):
        snap = self.conv.snapshot(self.user, customer)
        suggester = self.conv.suggester()
        memos = suggester.memos.done_memos(customer) if suggester is not None else []
        return snap, customer_facts(snap, memos, self.day)

    def _plan(self, customer: str) -> Any:
        suggester = self.conv.suggester()
        if suggester is None:
            return None
        return suggester.for_customer(self.user, customer, as_of=self.day, channel="chat")

    def _status(self, intent: Intent, customer: str) -> ChatAnswer:
        snap, facts = self._facts(customer)
        plan = self._plan(customer)
        suggestions = list(plan.suggestions) if plan else []
        answer = answers.briefing(facts, short_name(snap.name), suggestions, question=self.message)
        self.state.suggestion_ids = [s.id for s in answer.suggestions]
        return self._answer(answer, intent, customer)

    def _next_steps(self, intent: Intent, customer: str) -> ChatAnswer:
        snap = self.conv.snapshot(self.user, customer)
        plan = self._plan(customer)
        suggestions = list(plan.suggestions)[:5] if plan else []
        answer = answers.next_steps_answer(short_name(snap.name), suggestions, mode=plan.mode if plan else "offline",
                                           note=plan.note if plan else None)  # fmt: skip
        self.state.suggestion_ids = [s.id for s in suggestions]
        return self._answer(answer, intent, customer)

    def _command(self, intent: Intent, customer: str | None) -> ChatAnswer:
        if customer is None:
            self.state.clarify = {
                "question": WHICH_CUSTOMER,
                "options": [],
                "message": self.message,
                "intent": "command",
            }
            return self._answer(ChatAnswer(WHICH_CUSTOMER, ()), intent, None)
        snap = self.conv.snapshot(self.user, customer)
        surface = next((m.surface for m in self.linker.resolve(self.message) if m.id == customer), None)
        parsed = parse_command(self.message, as_of=self.day, customer_surface=surface,
                               contacts=[c.name for c in snap.contacts], owner_user_id=snap.owner_user_id,
                               user_id=self.user.id)  # fmt: skip
        if parsed.op is None:
            self.state.pending = None
            return self._answer(ChatAnswer(parsed.refusal or "无法执行该操作。", ()), intent, customer)
        if parsed.op == "update_stage" and not _open_opportunity(snap):
            return self._answer(ChatAnswer("该客户没有进行中的商机，无法修改阶段。", ()), intent, customer)
        change = {"id": f"pc_{secrets.token_hex(6)}", "op": parsed.op, "customer_id": customer,
                  "fields": parsed.fields, "status": "pending"}  # fmt: skip
        self.state.pending = change
        text = f"将{describe(change, short_name(snap.name))}。回复「确认」写入 CRM，回复「算了」取消。"
        return self._answer(ChatAnswer(text, ()), intent, customer, proposed_change=change)

    def _amend(self, intent: Intent) -> ChatAnswer:
        """「不对，改成下周三」: the pending change with the new date (or title), still pending."""
        pending = dict(self.state.pending or {})
        fields = dict(pending.get("fields") or {})
        due = resolve_due(self.message, self.day)
        if due is not None:
            for key in ("due", "date"):
                if key in fields or (key == "due" and pending["op"] == "create_task"):
                    fields[key] = due.iso()
        else:
            new = re.split(r"改成|改为|换成|改到", self.message, maxsplit=1)[-1].strip(" ：:，,。")
            if new and pending["op"] in ("create_task", "schedule_visit"):
                fields["title"] = new[:120]
            elif new:
                fields["notes"] = new[:500]
        pending["fields"] = fields
        self.state.pending = pending
        snap = self.conv.snapshot(self.user, pending["customer_id"])
        text = (
            f"已修改：将{describe(pending, short_name(snap.name))}。回复「确认」写入 CRM，回复「算了」取消。"
        )
        return self._answer(ChatAnswer(text, ()), intent, pending["customer_id"], proposed_change=pending)

    def _decide(self, intent: Intent) -> ChatAnswer:
        if intent.number is not None:
            return self._decide_suggestion(intent)
        pending = self.state.pending
        focus = self.state.focus_customer_id
        if pending is None or pending.get("status") != "pending":
            text = NOTHING_PENDING if intent.name == "confirm" else NOTHING_TO_DISMISS
            return self._answer(ChatAnswer(text, ()), intent, focus)
        if intent.name == "dismiss":
            pending = {**pending, "status": "dismissed"}
            self.state.pending = None
            return self._answer(ChatAnswer("好的，已取消，不会写入 CRM。", ()), intent, pending["customer_id"],
                                proposed_change=pending)  # fmt: skip
        snap = self.conv.snapshot(self.user, pending["customer_id"])  # still visible?
        change = crm_change(pending, opportunity_id=_open_opportunity(snap), user_id=self.user.id)
        try:
            result = apply_change(self.conv._engine, self.conv._crm, user_id=self.user.id, change=change,
                                  evidence_ids=[self.state.id], key=f"{self.state.id}:{pending['id']}",
                                  on_failed=self.conv._on_failed, audit_detail={"conversation_id": self.state.id})  # fmt: skip
        except ValueError as exc:
            raise AppError("validation_error", str(exc)) from exc
        applied = {**pending, "status": "applied"}
        self.state.pending = None
        status = {"delivered": "已写入 CRM", "pending": "已提交，CRM 暂不可用，恢复后自动写入"}.get(
            result.status, f"写入失败：{result.message or ''}"
        )
        text = f"{status}：{describe(pending, short_name(snap.name))}。"
        return self._answer(ChatAnswer(text, ()), intent, pending["customer_id"], proposed_change=applied)

    def _decide_suggestion(self, intent: Intent) -> ChatAnswer:
        ids = self.state.suggestion_ids
        n = intent.number or 0
        focus = self.state.focus_customer_id
        suggester = self.conv.suggester()
        if suggester is None or not 1 <= n <= len(ids):
            return self._answer(
                ChatAnswer(f"没有找到第 {n} 条建议，请按最近一次给出的建议编号回复。", ()), intent, focus
            )
        sid = ids[n - 1]
        if intent.verb == "dismiss":
            row = suggester.store.feedback(
                self.user.id, sid, "dismiss", comment=None, edited=None, channel="chat"
            )
            return self._answer(ChatAnswer(f"已忽略：{row.title}", ()), intent, focus)
        outcome = suggester.apply(self.user, sid, channel="chat")
        title = outcome["suggestion"]["title"]
        duplicate = (outcome.get("result") or {}).get("duplicate")
        text = f"该建议已采纳，无需重复操作：{title}" if duplicate else f"已采纳：{title}，已写入 CRM。"
        return self._answer(ChatAnswer(text, ()), intent, focus)

    def _answer(self, answer: ChatAnswer, intent: Intent, customer: str | None, *,
                proposed_change: dict[str, Any] | None = None, clarify: dict[str, Any] | None = None) -> ChatAnswer:  # fmt: skip
        return replace(
            answer, intent=intent.name, customer_id=customer, proposed_change=proposed_change, clarify=clarify
        )


_TOOL_INTENTS = ("ask_knowledge", "customer_status", "next_steps", "command")
IGNORED_TOOLS_LIMIT = (
    3  # an endpoint whose model never calls a tool (it ignores ``tools``): stop offering them
)


def _names_unknown(message: str) -> bool:
    """The message starts with a name we could not match (a customer not visible, or none such), or
    with a person we could not match among the visible customers' contacts (「顾总有没有再提磐石？」)."""
    return bool(_NAMES_SOMETHING.match(message) or _ORG_NAME.match(message) or _PERSON.match(message))


def _public(ask: dict[str, Any]) -> dict[str, Any]:
    return {"question": ask["question"], "options": list(ask.get("options") or [])}


def _open_opportunity(snap: CustomerSnapshot) -> str | None:
    open_ = [o for o in snap.opportunities if o.stage not in ("赢单", "输单")]
    return open_[-1].id if open_ else None


__all__ = ["Conversation", "bare"]
