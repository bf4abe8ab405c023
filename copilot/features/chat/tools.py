"""The tools a model may call in a chat turn (OpenAI ``tools`` protocol), run as the requesting user.

    search_kb(query)                 passages the user's team may see
    get_customer(customer)           CRM records of a customer the user may see
    list_suggestions(customer)       that customer's next-step suggestions (already cited)
    propose_change(op, customer, …)  a *pending* CRM change (DESIGN §5.7): nothing is written until the
                                     rep confirms, through the same confirmation + outbox path as offline

Every piece of evidence a tool returns gets a turn-local id (``E1``, ``E2`` …): the model cites those
ids and the code picks the verbatim span (``citations.validate``). A customer the user may not see
and a customer that does not exist give the same ``not_found`` result, which names neither. There is
no tool that writes: asking for one gets ``unknown_tool``.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from connectors.crm.base import STAGES, CustomerSnapshot
from copilot.agent.citations import Evidence, short_name
from copilot.agent.evidence import Item, crm_items
from copilot.agent.facts import Facts
from copilot.domain import Suggestion
from copilot.features.chat.commands import CLOSED_STAGES, OPS, describe
from copilot.infra.llm.budget import fit
from copilot.voice.extract.dates import resolve_due
from knowledge_base.documents import Hit

logger = logging.getLogger(__name__)

NAMES = ("search_kb", "get_customer", "list_suggestions", "propose_change")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
NOT_FOUND = {"error": "not_found", "detail": "没有找到您可以查看的这位客户。"}
PENDING_NOTE = "这只是提议，尚未写入 CRM：须销售回复「确认」后才会写入，回复「算了」取消。"


def _function(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


_CUSTOMER = {"type": "string", "description": "客户 id（如 c_xxx）或客户名称/简称"}
TOOLS: tuple[dict[str, Any], ...] = (
    _function(
        "search_kb",
        "检索知识库：话术、异议处理、政策、产品资料、案例。返回带 evidence_id 的资料。",
        {"query": {"type": "string", "description": "检索内容，中文"}},
        ["query"],
    ),
    _function(
        "get_customer",
        "查看一位客户的 CRM 记录（档案、联系人、商机、拜访、采购、任务），返回带 evidence_id 的记录。",
        {"customer": _CUSTOMER},
        ["customer"],
    ),
    _function(
        "list_suggestions",
        "某位客户的下一步建议（每条带依据的 evidence_id）。",
        {"customer": _CUSTOMER},
        ["customer"],
    ),
    _function(
        "propose_change",
        "提出一项 CRM 变更，等待销售确认（不会直接写入）。",
        {
            "op": {"type": "string", "enum": list(OPS)},
            "customer": _CUSTOMER,
            "title": {"type": "string", "description": "任务或拜访的标题"},
            "due": {"type": "string", "description": "截止日期 YYYY-MM-DD"},
            "date": {"type": "string", "description": "拜访日期 YYYY-MM-DD"},
            "notes": {"type": "string", "description": "备注或拜访纪要"},
            "stage": {"type": "string", "enum": [s for s in STAGES if s not in CLOSED_STAGES]},
            "contact": {"type": "string", "description": "联系人姓名"},
        },
        ["op", "customer"],
    ),
)


@dataclass
class ToolBox:
    """One turn's tools for one user: collaborators are callables scoped to that user already.

    ``snapshot(id)`` → the customer or None (unknown and not visible alike); ``resolve(text)`` → the id
    of the one visible customer a name or id denotes, else None."""

    search: Callable[[str], list[Hit]]
    snapshot: Callable[[str], CustomerSnapshot | None]
    resolve: Callable[[str], str | None]
    facts: Callable[[CustomerSnapshot], Facts]
    suggestions: Callable[[str], Sequence[Suggestion]]
    day: date
    user_id: str
    result_tokens: int = 1200  # evidence text per tool result, trimmed to fit
    evidence: dict[str, Evidence] = field(default_factory=dict)
    proposed: dict[str, Any] | None = None
    shown_suggestions: list[Suggestion] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)  # tool names, in order (ids only in logs)
    _keys: dict[tuple[str, str, str], str] = field(default_factory=dict)

    # -- dispatch ------------------------------------------------------------------------------------
    def run(self, name: str, arguments: str) -> str:
        """The tool's result as the JSON text to send back to the model."""
        self.calls.append(name if name in NAMES else "unknown")
        if name not in NAMES:
            logger.info("model asked for an unknown tool")
            return _dump({"error": "unknown_tool", "detail": "只能使用 search_kb、get_customer、list_suggestions、"
                          "propose_change；任何写入都须销售确认。"})  # fmt: skip
        try:
            args = json.loads(arguments or "{}")
        except ValueError:
            args = None
        if not isinstance(args, dict):
            return _dump({"error": "bad_arguments", "detail": "参数须为 JSON 对象。"})
        try:
            result = getattr(self, f"_{name}")(args)
        except ValueError as exc:
            result = {"error": "invalid", "detail": str(exc)}
        return _dump(result)

    # -- the tools -----------------------------------------------------------------------------------
    def _search_kb(self, args: dict[str, Any]) -> dict[str, Any]:
        query = str(args.get("query") or args.get("q") or "").strip()[:200]
        if not query:
            raise ValueError("query 不能为空。")
        items = [_kb_item(h) for h in self.search(query)]
        return {"results": self._shown(items)}

    def _get_customer(self, args: dict[str, Any]) -> dict[str, Any]:
        snap = self._customer(args)
        if snap is None:
            return NOT_FOUND
        items = crm_items(self.facts(snap))
        return {"customer_id": snap.id, "name": snap.name, "records": self._shown(items)}

    def _list_suggestions(self, args: dict[str, Any]) -> dict[str, Any]:
        snap = self._customer(args)
        if snap is None:
            return NOT_FOUND
        out = []
        for sg in list(self.suggestions(snap.id))[:5]:
            if sg.id not in {s.id for s in self.shown_suggestions}:
                self.shown_suggestions.append(sg)
            n = next(i for i, s in enumerate(self.shown_suggestions, 1) if s.id == sg.id)
            ids = [
                self._add(Item(c.kind, c.ref, c.locator, c.source, c.label, c.quote)) for c in sg.citations
            ]
            out.append({"n": n, "title": sg.title, "rationale": sg.rationale, "action_type": sg.action_type,
                        "evidence": [{"evidence_id": i, "text": self.evidence[i].text} for i in ids]})  # fmt: skip
        return {"customer_id": snap.id, "suggestions": out}

    def _propose_change(self, args: dict[str, Any]) -> dict[str, Any]:
        op = str(args.get("op") or "")
        if op not in OPS:
            raise ValueError(f"op 须为 {'、'.join(OPS)} 之一。")
        snap = self._customer(args)
        if snap is None:
            return NOT_FOUND
        fields = self._fields(op, args, snap)
        change = {"id": f"pc_{secrets.token_hex(6)}", "op": op, "customer_id": snap.id, "fields": fields,
                  "status": "pending"}  # fmt: skip
        self.proposed = change
        return {"status": "pending", "proposed_change_id": change["id"],
                "summary": describe(change, short_name(snap.name)), "note": PENDING_NOTE}  # fmt: skip

    # -- helpers -------------------------------------------------------------------------------------
    def _customer(self, args: dict[str, Any]) -> CustomerSnapshot | None:
        text = str(args.get("customer") or args.get("customer_id") or "").strip()[:80]
        cid = self.resolve(text) if text else None
        return self.snapshot(cid) if cid else None

    def _fields(self, op: str, args: dict[str, Any], snap: CustomerSnapshot) -> dict[str, Any]:
        def text(key: str, limit: int) -> str | None:
            value = args.get(key)
            return str(value).strip()[:limit] or None if isinstance(value, str | int | float) else None

        def day(key: str) -> str | None:
            value = text(key, 40)
            if value is None:
                return None
            if _DAY.match(value):
                try:
                    return date.fromisoformat(value).isoformat()
                except ValueError:
                    raise ValueError(f"{key} 日期无效：{value}") from None
            due = resolve_due(value, self.day)  # 「下周三」: resolved against the turn's day
            if due is None:
                raise ValueError(f"{key} 须为 YYYY-MM-DD。")
            return due.iso()

        contact = text("contact", 40)
        if op == "update_stage":
            stage = text("stage", 10)
            if stage in CLOSED_STAGES:
                raise ValueError("赢单/输单须由销售在 CRM 中依据合同手动变更，不能由对话提出。")
            if stage not in STAGES:
                raise ValueError("stage 须为 线索、需求确认、方案报价、商务谈判 之一。")
            if not any(o.stage not in CLOSED_STAGES for o in snap.opportunities):
                raise ValueError("该客户没有进行中的商机，无法修改阶段。")
            return {"stage": stage}
        if op == "create_task":
            fields = {"title": text("title", 120) or "跟进客户", "due": day("due") or day("date"),
                      "owner_user_id": snap.owner_user_id or self.user_id, "contact": contact}  # fmt: skip
        elif op == "schedule_visit":
            when = day("date") or day("due")
            fields = {
                "title": text("title", 120) or "拜访客户",
                "date": when,
                "due": when,
                "contact": contact,
            }
        elif op == "log_visit":
            notes = text("notes", 500) or text("title", 500)
            if not notes:
                raise ValueError("请给出拜访纪要 notes。")
            fields = {"date": day("date") or self.day.isoformat(), "notes": notes, "contact": contact}
        else:  # add_note
            notes = text("notes", 500) or text("title", 500)
            if not notes:
                raise ValueError("请给出备注内容 notes。")
            fields = {"notes": notes}
        return {k: v for k, v in fields.items() if v}

    def _add(self, item: Item) -> str:
        key = (item.kind, item.ref, item.locator)
        if key not in self._keys:
            eid = f"E{len(self.evidence) + 1}"
            self._keys[key] = eid
            self.evidence[eid] = Evidence(eid, item.kind, item.ref, item.locator, item.source, item.label,
                                          item.text)  # fmt: skip
        return self._keys[key]

    def _shown(self, items: list[Item]) -> list[dict[str, str]]:
        """Items with their ids, texts trimmed (a prefix: quotes from it still verify) to the budget."""
        ids = [self._add(i) for i in items]
        kept = fit([self.evidence[i].text for i in ids], self.result_tokens)
        return [
            {"evidence_id": i, "label": self.evidence[i].label, "text": text}
            for i, text in zip(ids, kept, strict=True)
            if text is not None
        ]


def _kb_item(hit: Hit) -> Item:
    return Item("kb", hit.chunk.id, hit.chunk.locator.short(), hit.document.path, hit.label, hit.chunk.text)


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False)
