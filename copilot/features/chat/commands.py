"""A rep's request for a CRM change → a proposed change the rep confirms (DESIGN §5.7 ``proposed_change``).

「帮我给华星建个任务：下周三前把三年TCO测算发给王总」 → create_task, title 「把三年TCO测算发给王总」, due the
Wednesday of next week. Dates resolve against ``as_of`` (下周三, 周五前, 月底前, 3号, 2月27号). Won/lost
stages are never proposed from a chat message: they follow contracts, in the CRM.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from connectors.crm.base import STAGES
from copilot.voice.extract.dates import resolve_due

OPS = ("create_task", "log_visit", "add_note", "update_stage", "schedule_visit")
CLOSED_STAGES = ("赢单", "输单")

_STAGE = re.compile("(" + "|".join(STAGES) + ")")
_VISIT_LOG = re.compile(
    r"(记|记录|登记|补录|录)[个一下条次]{0,2}(拜访|回访|电话|面谈|沟通|会议)|(今天|昨天|刚才|刚刚|上午|下午).{0,6}(拜访|去了|见了|打了电话|通了电话|聊了)"
)
_SCHEDULE = re.compile(
    r"(安排|约|预约|计划|排)[个一下条次]{0,2}(拜访|回访|上门|面谈|见面|会议|演示)|(去|上门).{0,8}拜访|上门|去现场|回访"
    r"|^安排.{0,8}(去|见)"
    r"|(帮我|给我)(约|排)"
)
# A contact event that already happened (记一下：今天下午电话联系了…) is a visit log, not a note.
_HAPPENED = re.compile(
    r"(今天|昨天|前天|刚才|刚刚|上午|下午|早上|晚上|上周|[0-9一二三四五六七八九十]+[号日]).{0,12}"
    r"(拜访|去了|见了|见到|电话|通话|联系了|聊了|谈了|开了|参加了|面谈|沟通了|演示了)"
    r"|(拜访|电话|会面|面谈)(记录)?[：:]"
)
_NOTE = re.compile(r"(加|添加|记|写)[个一下条]{0,2}(备注|笔记)|备注[：:]|记一下|记下来|帮我记")
_STAGE_CHANGE = re.compile(r"(改|推进|推|更新|调|挪|设|标)[成到为]?[「“\"]?(" + "|".join(STAGES) + ")|阶段")
# What introduces the task's content: 「…任务：X」, 「提醒我X」, 「…任务，X」.
_CONTENT = re.compile(
    r"(任务|待办|提醒|备注|笔记|记录|纪要|拜访|回访)[个一下条]?\s*[：:，,]\s*(.+)$|提醒我\s*(.+)$|记一下\s*[：:，,]?\s*(.+)$"
)
_LEAD = re.compile(r"^(请|麻烦)?(你)?(帮我|帮忙|给我)?(给|为|替|在)?")
_DATE_WORDS = re.compile(
    r"(在|于)?(今天|明天|后天|大后天|今晚|明早|本周|这周|下周|下下周|周[一二三四五六日天]|星期[一二三四五六日天]|礼拜[一二三四五六日天]|"
    r"月底|月初|月中|年底|[0-9一二三四五六七八九十]{1,3}[号日]|[0-9一二三四五六七八九十]{1,2}月[0-9一二三四五六七八九十]{1,3}[号日]?|"
    r"[0-9一二两三四五六七八九十]+(天|周|个?星期|个?月)(内|之内|以内|后))+(之前|以前|前|内)?"
)


@dataclass(frozen=True, slots=True)
class Parsed:
    op: str | None
    fields: dict[str, Any]
    refusal: str | None = None  # Chinese: why nothing is proposed


def op_of(message: str) -> str:
    if _STAGE_CHANGE.search(message) and _STAGE.search(message):
        return "update_stage"
    if _VISIT_LOG.search(message) or (_NOTE.search(message) and _HAPPENED.search(message)):
        return "log_visit"
    if re.search(r"任务|待办|提醒", message):  # 「建个任务：…回访」 is a task, whatever it is about
        return "create_task"
    if _SCHEDULE.search(message):
        return "schedule_visit"
    if _NOTE.search(message) and "任务" not in message:
        return "add_note"
    return "create_task"


_TRAILING_ASK = re.compile(
    r"[，,。；;]?\s*(请|麻烦)?(帮我|帮忙)?(记一下|记下来|记个备注|加个备注|建个任务|提醒我一下|提醒一下)[。！!]*$"
)


def _content(message: str, customer_surface: str | None, date_phrase: str | None = None) -> str:
    if date_phrase:  # the due date is a field of its own: 「下周三前把…」 → 「把…」
        message = re.sub(re.escape(date_phrase) + r"(之前|以前|前|之内|以内|内)?", "", message, count=1)
    message = _TRAILING_ASK.sub("", message)
    m = _CONTENT.search(message)
    text = next((g for g in (m.groups()[1:] if m else ()) if g), None) if m else None
    if not text:
        text = message
        text = re.sub(r"(帮我|帮忙|麻烦|请)?(给|为|替)?", "", text, count=1)
        text = re.sub(
            r"(建|创建|新建|加|添加|设|记|安排|约)[个一下条次]{0,2}(任务|待办|提醒|拜访|备注)", "", text
        )
    if customer_surface:
        text = re.sub(rf"^(给|为|替|跟|和)?{re.escape(customer_surface)}(那边|这边|的)?", "", text)
    text = _DATE_WORDS.sub("", text, count=1) if _DATE_WORDS.match(text.strip()) else text
    text = _LEAD.sub("", text.strip())
    return text.strip(" ：:，,。.！!；;")[:120]


def parse_command(message: str, *, as_of: date, customer_surface: str | None, contacts: list[str],
                  owner_user_id: str | None, user_id: str) -> Parsed:  # fmt: skip
    """The proposed change ``message`` asks for (fields per DESIGN §5.7), or a refusal."""
    op = op_of(message)
    due = resolve_due(message, as_of)
    contact = next((c for c in contacts if c and c in message), None)
    if op == "update_stage":
        stages = _STAGE.findall(message)
        stage = stages[-1] if stages else None
        if stage in CLOSED_STAGES or re.search(r"所有|全部", message):
            return Parsed(
                None,
                {},
                "赢单/输单须由销售在 CRM 中依据合同等实际凭证手动变更，也不能批量修改商机阶段；我不会提出这类变更。",
            )
        if stage is None:
            return Parsed(None, {}, "请说明要把商机改到哪个阶段（线索、需求确认、方案报价、商务谈判）。")
        return Parsed(op, {"stage": stage})
    dated = op in ("create_task", "schedule_visit")  # the date is a field of its own there
    title = _content(message, customer_surface, due.phrase if due and dated else None)
    if op == "create_task":
        fields: dict[str, Any] = {
            "title": title or "跟进客户",
            "due": (due.iso() if due else None),
            "owner_user_id": owner_user_id or user_id,
        }
        return Parsed(
            op, {k: v for k, v in fields.items() if v is not None} | ({"contact": contact} if contact else {})
        )
    if op == "schedule_visit":
        when = due.iso() if due else None
        fields = {"title": title or "拜访客户", "date": when, "due": when, "contact": contact}
        return Parsed(op, {k: v for k, v in fields.items() if v})
    if op == "log_visit":
        day = _visit_day(message, as_of)
        fields = {"date": day, "notes": title, "contact": contact}
        return Parsed(op, {k: v for k, v in fields.items() if v})
    return Parsed(op, {"notes": title} if title else {}, None if title else "请告诉我备注的内容。")


def _visit_day(message: str, as_of: date) -> str:
    """The day a logged visit happened: 昨天/前天, a calendar date (12月3号), else today."""
    if "前天" in message:
        return (as_of - timedelta(days=2)).isoformat()
    if "昨天" in message:
        return (as_of - timedelta(days=1)).isoformat()
    m = re.search(r"(?:([0-9一二三四五六七八九十]{1,2})月)?([0-9一二三四五六七八九十]{1,3})[号日]", message)
    if m:
        due = resolve_due(m.group(0) + "前", as_of)  # the calendar date nearest ahead, or this month's
        if due is not None:
            return due.iso()
    return as_of.isoformat()


def crm_change(change: dict[str, Any], *, opportunity_id: str | None, user_id: str) -> dict[str, Any]:
    """The write-back change (DESIGN §5.4 ops) that performs a confirmed chat change."""
    op, f, cid = change["op"], dict(change.get("fields") or {}), change["customer_id"]
    if op in ("create_task", "schedule_visit"):
        title = f.get("title") or "跟进客户"
        if op == "schedule_visit" and not title.startswith(("拜访", "上门")):
            title = f"拜访：{title}"
        notes = f"联系人：{f['contact']}" if f.get("contact") else ""
        return {"op": "create_task", "fields": {"customer_id": cid, "title": title, "due": f.get("due") or f.get("date"),
                                               "owner_user_id": f.get("owner_user_id") or user_id, "notes": notes}}  # fmt: skip
    if op == "log_visit":
        return {"op": "log_visit", "fields": {"customer_id": cid, "date": f["date"], "type": "拜访", "user_id": user_id,
                                             "contacts": [f["contact"]] if f.get("contact") else [], "notes": f.get("notes", "")}}  # fmt: skip
    if op == "add_note":
        return {
            "op": "add_note",
            "fields": {"customer_id": cid, "body": f.get("notes", ""), "user_id": user_id},
        }
    return {
        "op": "update_stage",
        "fields": {"customer_id": cid, "opportunity_id": opportunity_id, "stage": f["stage"]},
    }


def describe(change: dict[str, Any], customer_name: str) -> str:
    f = change.get("fields") or {}
    op = change["op"]
    when = f.get("due") or f.get("date")
    when_text = f"，日期 {when}" if when else ""
    if op == "create_task":
        return f"为「{customer_name}」新建任务「{f.get('title', '')}」{('，截止 ' + f['due']) if f.get('due') else ''}"
    if op == "schedule_visit":
        return f"为「{customer_name}」安排拜访「{f.get('title', '')}」{when_text}"
    if op == "log_visit":
        return f"记录对「{customer_name}」的拜访（{f.get('date')}）：{f.get('notes', '')}"
    if op == "add_note":
        return f"为「{customer_name}」添加备注：{f.get('notes', '')}"
    return f"把「{customer_name}」的商机阶段改为「{f.get('stage')}」"
