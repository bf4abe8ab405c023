"""The visit record: output shapes (every field points back to transcript segments) and what is known
beforehand from the CRM (customers, contacts, competitors and how people say their names)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

OBJECTION_TYPES = ("价格", "交付", "技术", "竞品", "预算", "决策流程", "服务", "其他")
STAGES = ("线索", "需求确认", "方案报价", "商务谈判", "赢单", "输单")
SENTIMENTS = ("积极", "中性", "消极")
REP = "我"  # owner of a step the rep (the speaker) committed to
CUSTOMER = "客户"


class _SegmentLike(Protocol):
    start: float
    end: float
    text: str


# -- output shapes --------------------------------------------------------------------------------


def locator(start: float, end: float) -> str:
    """``00:41–00:52``: the memo citation locator (DESIGN §5.4)."""

    def mmss(t: float) -> str:
        s = int(t)
        return f"{s // 60:02d}:{s % 60:02d}"

    return f"{mmss(start)}–{mmss(end)}"


@dataclass(frozen=True, slots=True)
class SourceRef:
    segment: int
    start: float
    end: float

    def to_json(self) -> dict[str, Any]:
        return {
            "segment": self.segment,
            "start": self.start,
            "end": self.end,
            "locator": locator(self.start, self.end),
        }


Sources = tuple[SourceRef, ...]


def _src(sources: Sources) -> list[dict[str, Any]]:
    return [s.to_json() for s in sources]


@dataclass(frozen=True, slots=True)
class CustomerMatch:
    id: str | None
    name: str
    mentioned_as: str | None
    basis: str  # upload (chosen by the rep) | transcript (named in it) | llm
    sources: Sources = ()

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "mentioned_as": self.mentioned_as, "basis": self.basis,
                "segments": _src(self.sources)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ContactMention:
    name: str  # the CRM name when matched, else as said ("黄总监")
    role: str
    mentioned_as: str
    in_crm: bool
    is_decision_maker: bool | None
    sources: Sources = ()

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "mentioned_as": self.mentioned_as, "in_crm": self.in_crm,
                "is_decision_maker": self.is_decision_maker, "segments": _src(self.sources)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Need:
    text: str
    sources: Sources = ()

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "segments": _src(self.sources)}


@dataclass(frozen=True, slots=True)
class Objection:
    type: str  # one of OBJECTION_TYPES
    text: str
    sources: Sources = ()

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "text": self.text, "segments": _src(self.sources)}


@dataclass(frozen=True, slots=True)
class CompetitorMention:
    name: str  # canonical name when known
    mentioned_as: str
    known: bool  # matched to the CRM's competitor list
    sources: Sources = ()

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "mentioned_as": self.mentioned_as, "known": self.known,
                "segments": _src(self.sources)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class NextStep:
    action: str
    owner: str  # 我 (the rep) | a contact | 客户
    due: str | None  # YYYY-MM-DD
    due_phrase: str | None  # what was said ("下周三之前")
    sources: Sources = ()

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "owner": self.owner, "due": self.due, "due_phrase": self.due_phrase,
                "segments": _src(self.sources)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Judgement:
    value: str | None
    basis: str  # what the value rests on, in Chinese
    sources: Sources = ()

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "basis": self.basis, "segments": _src(self.sources)}


@dataclass(frozen=True, slots=True)
class VisitRecord:
    customer: CustomerMatch | None
    contacts: tuple[ContactMention, ...]
    needs: tuple[Need, ...]
    objections: tuple[Objection, ...]
    competitors: tuple[CompetitorMention, ...]
    next_steps: tuple[NextStep, ...]
    sentiment: Judgement
    stage_hint: Judgement
    mode: str  # offline | llm
    missing: tuple[str, ...] = ()  # what could not be found, in Chinese
    note: str | None = None  # e.g. why the LLM extraction was replaced by the offline one

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "customer": self.customer.to_json() if self.customer else None,
            "contacts": [c.to_json() for c in self.contacts],
            "needs": [n.to_json() for n in self.needs],
            "objections": [o.to_json() for o in self.objections],
            "competitors": [c.to_json() for c in self.competitors],
            "next_steps": [s.to_json() for s in self.next_steps],
            "sentiment": self.sentiment.to_json(),
            "stage_hint": self.stage_hint.to_json(),
            "mode": self.mode,
            "missing": list(self.missing),
        }
        if self.note:
            data["note"] = self.note
        return data

    def to_eval(self) -> dict[str, Any]:
        """The gold shape of the memos eval (DESIGN §5.3), without segment references."""
        return {
            "customer": self.customer.id if self.customer else None,
            "needs": [n.text for n in self.needs],
            "objections": [{"type": o.type, "text": o.text} for o in self.objections],
            "competitors": [c.name for c in self.competitors],
            "next_steps": [{"action": s.action, "due": s.due, "owner": s.owner} for s in self.next_steps],
            "sentiment": self.sentiment.value,
            "stage_hint": self.stage_hint.value,
        }


# -- what we know beforehand (from the CRM) ----------------------------------------------------------

_COMPANY_SUFFIXES = ("股份有限公司", "有限责任公司", "有限公司", "股份公司", "集团", "公司", "制品厂", "厂")
_NAME_WORDS = ("科技", "电子", "汽车零部件", "零部件", "连锁超市", "超市", "医药连锁", "医药", "物流", "食品",
               "五金", "冷链", "便利店", "精密模具", "模具", "口腔医疗连锁", "口腔医疗", "医疗", "快运", "连锁")  # fmt: skip


def company_aliases(name: str) -> tuple[str, ...]:
    """How people say a company: 华星电子科技（苏州）有限公司 → 华星电子科技, 华星电子, 华星."""
    base = re.sub(r"[（(][^）)]*[）)]", "", name).strip()
    aliases = [name, base]
    for suffix in _COMPANY_SUFFIXES:
        if base.endswith(suffix) and len(base) > len(suffix) + 1:
            base = base[: -len(suffix)]
            aliases.append(base)
            break
    core = base
    changed = True
    while changed:
        changed = False
        for word in _NAME_WORDS:
            if core.endswith(word) and len(core) - len(word) >= 2:
                core = core[: -len(word)]
                aliases.append(core)
                changed = True
    seen: list[str] = []
    for a in aliases:
        if len(a) >= 2 and a not in seen:
            seen.append(a)
    return tuple(seen)


def competitor_aliases(name: str) -> tuple[str, ...]:
    """智云科技 → 智云科技, 智云; 海拓物联 → 海拓; 磐石物流装备 → 磐石物流, 磐石; 极驰机器人 → 极驰: trade words
    come off the end one at a time, as people drop them."""
    aliases = [name]
    core = name
    while True:
        suffix = next((x for x in _TRADE_SUFFIXES if core.endswith(x) and len(core) - len(x) >= 2), None)
        if suffix is None:
            break
        core = core[: -len(suffix)]
        aliases.append(core)
    return tuple(dict.fromkeys(aliases))


_TRADE_SUFFIXES = (
    "物联网", "机器人", "科技", "物联", "智能", "软件", "信息", "网络", "技术", "互联", "医疗", "财务", "器械", "电子",
    "云", "数据", "系统", "装备", "设备", "服务", "机械", "自动化", "物流", "集团", "股份", "公司", "叉车",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class KnownCustomer:
    id: str
    name: str
    aliases: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class KnownContact:
    name: str
    role: str
    customer_id: str
    is_decision_maker: bool = False


@dataclass(frozen=True, slots=True)
class ExtractionContext:
    customers: tuple[KnownCustomer, ...] = ()
    contacts: tuple[KnownContact, ...] = ()
    competitors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # canonical → aliases
    customer_id: str | None = None  # chosen by the rep at upload
    stage: str | None = None  # the CRM stage of that customer's open opportunity

    @classmethod
    def from_snapshots(cls, snapshots: Iterable[Any], *, customer_id: str | None = None) -> ExtractionContext:
        """From CRM ``CustomerSnapshot``s (duck-typed): names, contacts, opportunity competitors."""
        customers, contacts, competitors, stage = [], [], {}, None
        for snap in snapshots:
            customers.append(KnownCustomer(snap.id, snap.name, company_aliases(snap.name)))
            for c in snap.contacts:
                contacts.append(KnownContact(c.name, c.role or "", snap.id, bool(c.is_decision_maker)))
            for opp in snap.opportunities:
                for comp in opp.competitors:
                    competitors.setdefault(comp, competitor_aliases(comp))
                if snap.id == customer_id and opp.stage not in ("赢单", "输单"):
                    stage = opp.stage
        return cls(tuple(customers), tuple(contacts), competitors, customer_id, stage)

    def hotwords(self) -> list[str]:
        """Names Whisper should spell right: the chosen customer and its contacts first, then competitors."""
        words: list[str] = []
        chosen = [c for c in self.customers if c.id == self.customer_id]
        for cust in chosen:
            words.extend(cust.aliases[-2:])  # the short forms are what people say
        words.extend(c.name for c in self.contacts if c.customer_id == self.customer_id)
        words.extend(self.competitors)
        if not chosen:
            words.extend(c.aliases[-1] for c in self.customers)
        return list(dict.fromkeys(w for w in words if w))
