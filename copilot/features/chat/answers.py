"""Offline answers that read like a colleague: the best answer first, then at most two supporting
points, every one a verbatim, cited span; a customer briefing from the CRM as of a date.

Relevance floor instead of padding: a passage far below the best one (fused score under
``FLOOR`` × the top) is left out, and so are repeats of a quote already given.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from copilot.agent.citations import squash
from copilot.agent.drafting import pick_sentence
from copilot.agent.evidence import crm_items
from copilot.agent.facts import Facts
from copilot.domain import ChatAnswer, Citation, Suggestion
from knowledge_base.documents import Hit

FLOOR = 0.45
MAX_POINTS = 2
NO_EVIDENCE = "知识库中没有找到与该问题相关的资料。可以换个说法再问，或请管理员补充相关话术文档。"
_WORDS = re.compile(r"[\u4e00-\u9fff]{2,}|[A-Za-z]{2,}|\d+")
# Table rows: prefer the answer column when quoting.
_ANSWER_FIELDS = ("标准应答话术", "应答话术", "推荐话术", "话术", "回答", "答案", "应答")
_LEADS = {
    "objection": "建议这样回应：",
    "talk_track": "建议这样回应：",
    "faq": "答：",
    "policy": "按现行政策：",
    "rules": "按公司规定：",
    "battlecard": "竞品应对要点：",
    "case": "可参考的案例：",
    "product": "产品资料中说明：",
}


def _keywords(question: str) -> list[str]:
    words = _WORDS.findall(question)
    grams = [w[i : i + 2] for w in words if len(w) > 2 for i in range(len(w) - 1)]
    return list(dict.fromkeys([*words, *grams]))


def _quote(hit: Hit, keywords: Sequence[str]) -> str:
    text = hit.chunk.text
    for name in _ANSWER_FIELDS:
        value = (hit.chunk.fields or {}).get(name)
        if value and value in text:
            return pick_sentence(value, keywords) if len(value) > 160 else value.strip()
    return pick_sentence(text, keywords)


def _cite(hit: Hit, quote: str) -> Citation:
    return Citation("kb", hit.chunk.id, hit.chunk.locator.short(), hit.document.path, quote, hit.label)


def relevant(hits: list[Hit]) -> list[Hit]:
    if not hits:
        return []
    top = max(h.score for h in hits) or 1.0
    return [h for i, h in enumerate(hits) if i == 0 or h.score >= FLOOR * top]


def knowledge_answer(
    question: str, hits: list[Hit], *, lead_in: str = "", note: str | None = None
) -> ChatAnswer:
    """The best passage's best sentence first, then up to ``MAX_POINTS`` other documents' points."""
    hits = relevant(hits)
    if not hits:
        return ChatAnswer(answer=NO_EVIDENCE, citations=(), mode="offline", note=note)
    keywords = _keywords(question)
    citations: list[Citation] = []
    seen: set[str] = set()
    docs: set[str] = set()
    for hit in hits:
        quote = _quote(hit, keywords).strip()
        key = squash(quote)
        if not quote or key in seen or (citations and hit.document.path in docs):
            continue
        seen.add(key)
        docs.add(hit.document.path)
        citations.append(_cite(hit, quote))
        if len(citations) > MAX_POINTS:
            break
    best, rest = citations[0], citations[1:]
    doc_type = hits[0].document.doc_type or ""
    lines = [f"{lead_in}{_LEADS.get(doc_type, '')}{best.quote}（{best.label}）"]
    if rest:
        lines.append("补充：")
        lines += [f"{i}. {c.quote}（{c.label}）" for i, c in enumerate(rest, start=1)]
    return ChatAnswer(answer="\n".join(lines), citations=tuple(citations), mode="offline", note=note)


# -- a customer, as of a date ------------------------------------------------------------------------

_BRIEF_FIELDS = ("profile", "opportunities", "visits", "tasks", "purchases")
# What part of the record a question asks about: those lines come first (「谁拍板？」 → the contacts).
_ASPECTS = (
    ("contacts", re.compile(r"谁|联系人|拍板|决策|负责人|对接人|说了算|电话")),
    ("visits", re.compile(r"拜访|上次|上一次|最近一次|见了|见的|聊了|谈了|去过|去的")),
    ("tasks", re.compile(r"任务|待办|到期|逾期|发了|交了|承诺|答应")),
    ("opportunities", re.compile(r"商机|阶段|单子|项目|金额|多少钱|报价|竞品|顾问|售前|招标|折扣|签")),
    ("purchases", re.compile(r"采购|订单|用量|下单|耗材|进货|回款|尾款")),
    ("profile", re.compile(r"用的|在用|系统|ERP|行业|规模|等级|几类|备注|背景")),
)


def asked_fields(question: str) -> list[str]:
    """The record's fields a question asks about, in the order of ``_ASPECTS``."""
    return [fld for fld, cue in _ASPECTS if cue.search(question or "")]


def briefing(
    facts: Facts, name: str, suggestions: Sequence[Suggestion] = (), *, question: str = ""
) -> ChatAnswer:
    """Stage and days in stage, the last visit, open/overdue tasks, purchases, the last memo's points:
    each line a CRM record quoted as rendered for citation (verifiable at its source). What the
    ``question`` asks about comes first (the contacts only when asked)."""
    items = crm_items(facts)
    lines = [f"「{name}」近况（截至 {facts.as_of.isoformat()}）："]
    citations: list[Citation] = []
    picked = []
    asked = asked_fields(question)
    for fld in dict.fromkeys([*asked, *_BRIEF_FIELDS]):
        of_field = [i for i in items if i.ref.endswith(f".{fld}")]
        if fld == "visits":
            of_field = [i for i in of_field if i.locator == "latest"] or of_field[:1]
        elif fld == "tasks":
            of_field = of_field[:2]
        elif fld != "opportunities":
            of_field = of_field[:1]
        picked += of_field[:3]
    for item in picked:
        citations.append(Citation(item.kind, item.ref, item.locator, item.source, item.text, item.label))
        lines.append(f"· {item.text}")
    memo = facts.latest_memo
    record = (memo.visit_record or {}) if memo else {}
    objections = [
        o.get("text") for o in record.get("objections") or [] if isinstance(o, dict) and o.get("text")
    ]
    competitors = [c.get("name") if isinstance(c, dict) else c for c in record.get("competitors") or []]
    if objections:
        lines.append("· 最近录音中的异议：" + "；".join(objections[:3]))
    if competitors := [c for c in competitors if c]:
        lines.append("· 最近录音提到的竞品：" + "、".join(competitors[:3]))
    if suggestions:
        lines.append("建议的下一步：")
        lines += [f"{i}. {s.title}" for i, s in enumerate(suggestions[:3], start=1)]
        lines.append("回复「确认 N」执行第 N 条建议。")
    return ChatAnswer(answer="\n".join(lines), citations=tuple(citations), suggestions=tuple(suggestions[:3]))


def next_steps_answer(
    name: str, suggestions: Sequence[Suggestion], *, mode: str, note: str | None
) -> ChatAnswer:
    if not suggestions:
        return ChatAnswer(
            f"「{name}」目前没有需要跟进的新建议（CRM、录音和规则都未触发）。", (), mode=mode, note=note
        )
    lines = [f"「{name}」建议的下一步："]
    citations: list[Citation] = []
    for i, sg in enumerate(suggestions, start=1):
        lines.append(f"{i}. {sg.title}")
        lines.append(f"   {sg.rationale}")
        for c in sg.citations[:2]:
            lines.append(f"   —— {c.label}")
            if c not in citations:
                citations.append(c)
    lines.append("回复「确认 N」执行第 N 条（写入 CRM），「忽略 N」忽略。")
    return ChatAnswer("\n".join(lines), tuple(citations), tuple(suggestions), mode=mode, note=note)
