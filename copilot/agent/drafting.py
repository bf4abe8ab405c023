"""Turning a fired rule into a draft suggestion: the claims (evidence id + verbatim quote), the
proposed CRM task and the wording. Shared by every trigger kind (``copilot.agent.triggers``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from copilot.agent.citations import ClaimedCitation, short_name
from copilot.agent.evidence import EvidenceSet
from copilot.agent.facts import Mention
from copilot.agent.ruleset import Trigger
from copilot.domain import ProposedChange

_SENTENCE = re.compile(r"[^。！？；!?;\n]+[。！？；!?;]?")
MAX_QUOTE = 160


@dataclass(frozen=True, slots=True)
class Draft:
    action_type: str
    title: str
    rationale: str
    confidence: float
    claims: tuple[ClaimedCitation, ...]
    proposed_change: ProposedChange | None = None
    rule_id: str | None = None


def pick_sentence(text: str, keywords: tuple[str, ...] | list[str] = ()) -> str:
    """A verbatim span of ``text``: the sentence with the most keywords (tags and stubs skipped), extended
    by the next sentence when short; at most ~MAX_QUOTE chars."""
    sentences = [s.strip() for s in _SENTENCE.findall(text) if s.strip()] or [text.strip()]
    useful = [
        i for i, s in enumerate(sentences) if len(s) >= 12 and not s.startswith(("场景标签", "版本日期"))
    ]
    pool = useful or list(range(len(sentences)))
    best = max(pool, key=lambda i: (sum(1 for k in keywords if k and k in sentences[i]), -i))
    chosen = sentences[best]
    if len(chosen) < 40 and best + 1 < len(sentences):
        joined = text[text.index(chosen) :]
        nxt = sentences[best + 1]
        end = joined.find(nxt)
        if end >= 0:
            chosen = joined[: end + len(nxt)]
    return chosen if len(chosen) <= MAX_QUOTE else chosen[:MAX_QUOTE]


class DraftBuilder:
    def __init__(self, ev: EvidenceSet) -> None:
        self.ev = ev
        self.facts = ev.facts
        self.c = ev.facts.customer
        self.short = short_name(self.c.name)

    def claim(
        self, eid: str | None, quote: str | None = None, keywords: tuple[str, ...] = ()
    ) -> list[ClaimedCitation]:
        if not eid:
            return []
        text = self.ev.items[eid].text
        if quote is None:
            quote = pick_sentence(text, keywords) if self.ev.items[eid].kind != "crm" else text
        return [ClaimedCitation(eid, quote)]

    def part(self, eid: str | None, name: str) -> list[ClaimedCitation]:
        if not eid:
            return []
        return self.claim(eid, self.ev.parts.get(eid, {}).get(name) or None)

    def passage(self, trig: Trigger, role: str, keywords: tuple[str, ...] = ()) -> list[ClaimedCitation]:
        eid = self.ev.passages.get((trig.rule.id, trig.key, role))
        return self.claim(eid, None, keywords or trig.rule.reason_keywords) if eid else []

    def mentions(self, mentions: list[Mention], limit: int = 2) -> list[ClaimedCitation]:
        out: list[ClaimedCitation] = []
        for m in mentions:
            if m.kind == "memo":
                eid = self.ev.memo.get((m.ref, m.index))
                out += self.claim(eid, None, (m.keyword,))
            elif m.kind == "visit" and m.index is not None:
                out += self.claim(self.ev.visit_id(m.index), None)
            elif m.kind == "opportunity":
                out += self.part(self.ev.crm_id("opportunities", m.ref), "competitors")
            if len(out) >= limit:
                break
        return out

    def task(self, title: str, days: int, notes: str = "") -> ProposedChange:
        due = (self.facts.as_of + timedelta(days=days)).isoformat()
        fields = {
            "customer_id": self.c.id,
            "title": title,
            "due": due,
            "owner_user_id": self.c.owner_user_id,
            "notes": notes,
        }
        return ProposedChange("create_task", fields)

    @staticmethod
    def where(mentions: list[Mention]) -> str:
        m = mentions[0]
        if m.kind == "memo":
            return f"最新拜访录音 {m.ref} 中"
        if m.kind == "visit":
            return f"{m.ref} 的拜访记录中"
        return f"在谈商机 {m.ref} 的竞品信息中"


@dataclass(frozen=True, slots=True)
class DraftContext:
    """What every kind's draft starts from: the builder, the rule's note, its own KB passage (the rules
    document, when found: +0.05 confidence) and the task's due offset."""

    b: DraftBuilder
    rule_note: str
    reason: list[ClaimedCitation]
    due_days: int
    bonus: float


def draft_context(trig: Trigger, ev: EvidenceSet) -> DraftContext:
    b = DraftBuilder(ev)
    reason = b.passage(trig, "reason")
    return DraftContext(b, f"依据规则：{trig.rule.description}", reason, int(trig.rule.param("due_in_days", 3)),
                        0.05 if reason else 0.0)  # fmt: skip


def doc_names(labels: list[str]) -> str:
    """``依据《异议处理话术》2026-03-01 第3页`` … → ``《异议处理话术》、…`` (each once)."""
    return "、".join(dict.fromkeys(re.sub(r"^依据(《[^》]*》).*$", r"\1", n) for n in labels))
