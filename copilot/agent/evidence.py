"""Evidence for (user, customer, as-of date): CRM records, memo segments and KB passages, each with an
evidence id for this turn and the exact text a quote must come from.

CRM evidence is rendered from the customer's snapshot *as of* the date (records dated after it are
ignored), so the same (customer, as_of) always renders the same text: ``SourceResolver`` re-renders it
to verify a citation against the stored source. Text that reads like an instruction to an AI is kept
out of the evidence (documents, memo segments, CRM notes are data, never instructions).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

from connectors.crm.base import CRM, CustomerSnapshot
from copilot.agent.citations import Evidence, crm_label, memo_label, memo_locator
from copilot.agent.conditions import presales_field
from copilot.agent.facts import Facts, MemoView, parse_day
from copilot.agent.ruleset import Trigger
from copilot.agent.safety import looks_like_injection

if TYPE_CHECKING:
    from knowledge_base.base import KnowledgeBase
    from knowledge_base.documents import DocumentInfo, Hit

logger = logging.getLogger(__name__)
OMITTED = "［疑似指令文本，已略去］"
MAX_VISITS = 6
MAX_TASKS = 8
MAX_MEMOS = 2


def _clean(text: str) -> str:
    text = (text or "").strip()
    return OMITTED if looks_like_injection(text) else text


def _money(amount: float | None) -> str:
    return "—" if amount is None else f"{amount:,.0f}"


@dataclass(frozen=True, slots=True)
class Item:
    """An evidence item before it gets its turn-local id; ``parts`` are named verbatim pieces of ``text``."""

    kind: str
    ref: str
    locator: str
    source: str
    label: str
    text: str
    parts: dict[str, str] = field(default_factory=dict)


# -- CRM ------------------------------------------------------------------------------------------


def crm_items(facts: Facts) -> list[Item]:
    """Every CRM record worth citing, rendered as of ``facts.as_of``."""
    c, as_of = facts.customer, facts.as_of.isoformat()
    name = c.name

    def item(fld: str, locator: str, detail: str, text: str, parts: dict[str, str] | None = None) -> Item:
        ref = f"{c.id}.{fld}"
        return Item("crm", ref, locator, ref, crm_label(name, fld, detail), text, parts or {})

    out = []
    profile = (
        f"客户：{c.name}；等级：{c.tier or '未分级'} 类；行业：{c.industry or '—'}；地区：{c.region or '—'}"
    )
    notes = _clean(c.notes)
    out.append(
        item(
            "profile",
            "profile",
            f"{c.tier or '未分级'} 类客户",
            profile + (f"；备注：{notes}" if notes else ""),
        )
    )
    if c.contacts:
        people = "、".join(
            f"{p.name}（{p.role or '—'}{'，决策人' if p.is_decision_maker else ''}）" for p in c.contacts
        )
        out.append(item("contacts", "contacts", f"{len(c.contacts)} 位", f"联系人：{people}"))

    latest, days = facts.latest_visit, facts.days_since_visit
    if latest is not None:
        summary = f"最近一次拜访：{latest.date}（{latest.type or '拜访'}），截至 {as_of} 已 {days} 天未拜访"
        out.append(
            item("visits", "latest", f"最近一次 {latest.date}，已{days}天", summary, {"summary": summary})
        )
    else:
        summary = f"截至 {as_of} 没有拜访记录"
        out.append(item("visits", "latest", "无拜访记录", summary, {"summary": summary}))
    visits = sorted(enumerate(c.visits), key=lambda iv: iv[1].date, reverse=True)[:MAX_VISITS]
    for idx, v in visits:
        who = f"（联系人：{'、'.join(v.contacts)}）" if v.contacts else ""
        notes = _clean(v.notes)
        out.append(
            item(
                "visits",
                f"visit {idx + 1}",
                v.date,
                f"{v.date} {v.type or '拜访'}：{notes}{who}",
                {"notes": notes},
            )
        )

    changes = facts.purchase_changes()[-12:]
    if changes:
        pieces = [
            f"{m} {_money(a)} 元" + (f"（环比 {ch:+.1f}%）" if ch is not None else "") for m, a, ch in changes
        ]
        recent = [ch for *_x, ch in changes[-3:] if ch is not None]
        detail = ("近3月环比 " + "、".join(f"{x:+.1f}%" for x in recent)) if recent else f"{changes[-1][0]}"
        text = "月度采购额：" + "；".join(pieces)
        out.append(
            item(
                "purchases", f"{changes[0][0]}~{changes[-1][0]}", detail, text, {"pieces": "；".join(pieces)}
            )
        )

    for opp in c.opportunities:
        d = facts.days_in_stage(opp)
        stage = f"当前阶段 {opp.stage}" + (
            f"，{opp.stage_entered} 进入该阶段，截至 {as_of} 已 {d} 天" if d is not None else ""
        )
        comp = f"竞品：{'、'.join(opp.competitors)}" if opp.competitors else ""
        history = " → ".join(f"{h.stage} {h.entered}" for h in opp.stage_history)
        extra = opp_custom_text(opp.custom, facts.as_of)
        text = "；".join(
            x
            for x in (
                f"商机「{opp.name}」（{opp.id}）：{stage}",
                f"金额 {_money(opp.amount)} {opp.currency}",
                f"预计成交 {opp.expected_close}" if opp.expected_close else "",
                comp,
                extra,
                f"阶段历史：{history}" if history else "",
            )
            if x
        )
        detail = f"{opp.stage}，已{d}天" if d is not None else opp.stage
        out.append(item("opportunities", opp.id, detail, text, {"stage": stage, "competitors": comp}))

    for key, value in c.custom.items():
        text = custom_text(key, value, facts.as_of)
        if text:
            out.append(item(key, key, custom_label(key), f"{custom_label(key)}：{_clean(text)}"))

    open_first = sorted(c.tasks, key=lambda x: (x.status == "done", x.due or ""))[:MAX_TASKS]
    overdue = dict((task.id, n) for task, n in facts.overdue_tasks())
    for task in open_first:
        status = "已完成" if task.status == "done" else "未完成"
        late = f"，截至 {as_of} 已逾期 {overdue[task.id]} 天" if task.id in overdue else ""
        head = f"任务「{_clean(task.title)}」（{task.id}）"
        body = f"创建 {task.created or '—'}，截止 {task.due or '—'}，状态 {status}{late}"
        detail = f"逾期{overdue[task.id]}天" if task.id in overdue else f"截止 {task.due or '—'}"
        out.append(item("tasks", task.id, detail, f"{head}：{body}", {"status": body}))
    return out


# -- custom CRM fields ---------------------------------------------------------------------------

CUSTOM_LABELS = {
    "receivables": "应收账款", "invoices": "应收账款", "contract_end": "合同到期日", "contract_end_date": "合同到期日",
    "renewal_date": "续约日期", "se_assigned": "售前", "presales": "售前", "solution_consultant": "解决方案顾问",
    "quote_sent_date": "报价发出日期", "credit_rating": "信用评级", "lost_reason": "输单原因",
}  # fmt: skip
_PRESALES = ("se_assigned", "presales", "presales_engineer", "solution_consultant", "solution_engineer")
_ROW_LABELS = {"invoice": "发票", "amount": "金额", "due": "到期", "paid": "已回款", "paid_date": "回款日期"}


def custom_label(key: str) -> str:
    return CUSTOM_LABELS.get(key, key)


def _row_text(row: dict[str, Any], as_of: date) -> str:
    parts = []
    for k, v in row.items():
        if k == "paid":
            continue
        if isinstance(v, int | float) and not isinstance(v, bool):
            v = _money(v)
        parts.append(f"{_ROW_LABELS.get(k, k)} {v}")
    if "paid" in row:
        paid = row.get("paid") in (True, "true", "是", "yes")
        due = parse_day(str(row.get("due") or ""))
        late = f"，截至 {as_of} 已逾期 {(as_of - due).days} 天" if not paid and due and due < as_of else ""
        parts.append(("已回款" if paid else "未回款") + late)
    return "，".join(parts)


def custom_text(key: str, value: Any, as_of: date) -> str:
    """A custom CRM field as one line of text (lists of records one per ``；``); '' when empty."""
    if value is None or value == "" or value == [] or value == {}:
        return ""
    if isinstance(value, list):
        return "；".join(_row_text(v, as_of) if isinstance(v, dict) else str(v) for v in value)
    if isinstance(value, dict):
        return _row_text(value, as_of)
    return str(value)


def opp_custom_text(custom: dict[str, Any], as_of: date) -> str:
    parts = []
    for key, value in custom.items():
        if isinstance(value, list | dict):
            continue
        if key in _PRESALES or presales_field({key: value})[0] == key:
            parts.append(f"{custom_label(key)}：{value or '未指派'}")
        elif value not in (None, ""):
            parts.append(f"{custom_label(key)}：{value}")
    return "；".join(parts)


# -- memos ----------------------------------------------------------------------------------------


class MemoSource(Protocol):
    """Where the agent reads a customer's finished memos (``copilot.features.memos.repo.MemoRepo``)."""

    def done_memos(self, customer_id: str) -> list[MemoView]: ...

    def customer_of(self, memo_id: str) -> str | None: ...


def memo_items(memo: MemoView) -> list[tuple[int | None, Item]]:
    """One item per transcript segment (``MM:SS–MM:SS``), or the whole transcript when there are none."""
    out: list[tuple[int | None, Item]] = []
    if memo.segments:
        for i, s in enumerate(memo.segments):
            if looks_like_injection(s.text):
                continue
            loc = memo_locator(s.start, s.end)
            out.append((i, Item("memo", memo.id, loc, memo.id, memo_label(memo.id, loc), s.text)))
    elif memo.transcript.strip() and not looks_like_injection(memo.transcript):
        out.append((None, Item("memo", memo.id, "", memo.id, memo_label(memo.id, ""), memo.transcript)))
    return out


# -- knowledge base -------------------------------------------------------------------------------


class PassageFinder:
    """Cached KB look-ups for one user's visible teams; stale, future-dated and instruction-like passages
    are never returned. The cache is keyed by the catalogue's document versions, so an ingest invalidates it."""

    def __init__(self, kb: KnowledgeBase, cache: dict[Any, Any] | None = None) -> None:
        self.kb = kb
        self.cache = cache if cache is not None else {}
        docs = kb.documents()
        self.version = tuple(sorted((d.path, d.content_hash) for d in docs))
        self.docs = {d.path: d for d in docs}
        successors: dict[str, DocumentInfo] = {}
        for d in docs:
            if d.supersedes:
                successors[d.supersedes] = d
        self.successors = successors

    def superseded(self, doc: DocumentInfo, as_of: date) -> bool:
        newer = self.successors.get(doc.path)
        return newer is not None and (parse_day(newer.date) or date.min) <= as_of

    def search(
        self,
        query: str,
        *,
        teams: set[str] | None,
        as_of: date,
        doc_types: Sequence[str] = (),
        industry: str | None = None,
        k: int = 6,
    ) -> list[Hit]:
        filters: dict[str, Any] = {}
        if doc_types:
            filters["doc_type"] = list(doc_types)
        if industry:
            filters["industry"] = industry
        key = (
            self.version,
            query,
            tuple(sorted(teams)) if teams is not None else None,
            tuple(doc_types),
            industry,
            k,
        )
        if key not in self.cache:
            if len(self.cache) > 2048:
                self.cache.clear()
            self.cache[key] = self.kb.search(query, k=k, visible_teams=teams, filters=filters or None)
        hits: list[Hit] = self.cache[key]
        return [
            h
            for h in hits
            if not self.superseded(h.document, as_of)
            and (parse_day(h.document.date) or date.min) <= as_of
            and not looks_like_injection(h.chunk.text)
        ]


def kb_item(hit: Hit) -> Item:
    return Item(
        "kb",
        hit.chunk.id,
        hit.chunk.locator.short(),
        hit.document.path,
        hit.label.replace("（旧版）", ""),
        hit.chunk.text,
    )


def _contains_any(hit: Hit, words: Sequence[str]) -> bool:
    hay = f"{hit.document.title}\n{hit.chunk.text}"
    return not words or any(w and w in hay for w in words)


_HEADER_LINES = re.compile(r"^(?:(?:版本日期|生效日期|发布部门|发布|密级|审批)[^\n]*\n+)+")


def _substantive(hit: Hit) -> bool:
    """Not a header stub (``版本日期：… 密级：…``): something a rep can use."""
    text = _HEADER_LINES.sub("", hit.chunk.text.strip()).strip()
    return len(text) >= 30 and not text.startswith("版本日期")


def first_hit(hits: list[Hit], words: Sequence[str]) -> Hit | None:
    return next((h for h in hits if _substantive(h) and _contains_any(h, words)), None)


def discount_cap(text: str, tier: str) -> float | None:
    """``A类客户最高12%`` → 12.0 for tier A; None when the text states no cap for the tier."""
    if not tier:
        return None
    m = re.search(rf"{re.escape(tier)}\s*类客户[^。；;，,]{{0,12}}?(\d+(?:\.\d+)?)\s*%", text)
    return float(m.group(1)) if m else None


# -- the whole set --------------------------------------------------------------------------------


@dataclass
class EvidenceSet:
    facts: Facts
    triggers: list[Trigger]
    items: dict[str, Evidence] = field(default_factory=dict)
    parts: dict[str, dict[str, str]] = field(default_factory=dict)
    crm: dict[tuple[str, str], str] = field(default_factory=dict)  # (field, locator) -> id
    memo: dict[tuple[str, int | None], str] = field(default_factory=dict)  # (memo id, segment) -> id
    passages: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (rule id, key, role) -> id
    discount_caps: dict[str, float] = field(default_factory=dict)  # tier -> % cap from the current policy
    _by_key: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def add(self, item: Item) -> str:
        key = (item.kind, item.ref, item.locator)
        if key in self._by_key:
            return self._by_key[key]
        eid = f"E{len(self.items) + 1}"
        self._by_key[key] = eid
        self.items[eid] = Evidence(eid, item.kind, item.ref, item.locator, item.source, item.label, item.text)
        self.parts[eid] = item.parts
        return eid

    def crm_id(self, fld: str, locator: str) -> str | None:
        return self.crm.get((fld, locator))

    def visit_id(self, index: int) -> str | None:
        return self.crm.get(("visits", f"visit {index + 1}"))


class SourceResolver:
    """The stored text at (kind, ref, locator), for verifying rendered citations independently."""

    def __init__(
        self,
        *,
        crm: CRM,
        memos: MemoSource,
        kb: Callable[[], KnowledgeBase] | None,
        facts_for: Callable[[CustomerSnapshot], Facts],
    ) -> None:
        self._crm, self._memos, self._kb, self._facts_for = crm, memos, kb, facts_for
        self._crm_text: dict[str, dict[tuple[str, str], str]] = {}

    def __call__(self, kind: str, ref: str, locator: str) -> str | None:
        if kind == "kb" and self._kb is not None:
            found = self._kb().get_chunk(ref)
            return found[0].text if found and found[0].locator.short() == locator else None
        if kind == "crm":
            customer_id = ref.rsplit(".", 1)[0]
            if customer_id not in self._crm_text:
                snap = self._crm.get_customer(customer_id)
                items = crm_items(self._facts_for(snap)) if snap else []
                self._crm_text[customer_id] = {(i.ref, i.locator): i.text for i in items}
            return self._crm_text[customer_id].get((ref, locator))
        if kind == "memo":
            customer_id = self._memos.customer_of(ref)
            if customer_id is None:
                return None
            for memo in self._memos.done_memos(customer_id):
                if memo.id == ref:
                    return next((i.text for _x, i in memo_items(memo) if i.locator == locator), None)
        return None
