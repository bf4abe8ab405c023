"""The offline (no-LLM) planner: fired rules + detected situations + retrieved talk tracks → suggestions.

Every suggestion cites what triggered it (the CRM record, the memo segment), the passage it asks
the rep to use, and the knowledge base's own rule when one exists. ``finalize`` is shared with the
LLM planner: citations go through the validator, suggestions without a valid citation are dropped
and ``vet`` rejects unsafe proposals (discounts beyond policy, stage changes not grounded in CRM facts).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.crm.base import STAGES, draft_fields, draft_for
from copilot.agent.citations import Evidence, validate
from copilot.agent.drafting import Draft, pick_sentence
from copilot.agent.evidence import EvidenceSet
from copilot.agent.safety import looks_like_injection
from copilot.agent.triggers import draft_for_trigger
from copilot.domain import ACTION_TYPES, CHANGE_OPS, Citation, ProposedChange, Suggestion

_SENTENCE = re.compile(r"[^。！？；!?;\n]+[。！？；!?;]?")
MAX_QUOTE = 160


@dataclass
class PlanResult:
    suggestions: list[Suggestion]
    mode: str = "offline"  # offline | llm
    note: str | None = None
    dropped_citations: int = 0
    dropped_suggestions: int = 0
    unsafe: list[str] = field(default_factory=list)  # reasons, for logs and tests (no text)


# -- discounts and other safety checks ------------------------------------------------------------

_CN_DIGIT = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_PCT_AFTER = re.compile(r"(\d+(?:\.\d+)?)\s*[%％](?:\s*的)?\s*(?:折扣|优惠|让利|降价|off)", re.I)
_PCT_BEFORE = re.compile(r"(?:折扣|打折|让利|优惠|降价|下浮|折让)[^。；;，,\n]{0,8}?(\d+(?:\.\d+)?)\s*[%％]")
_ZHE_CN = re.compile(r"([一二三四五六七八九])([一二三四五六七八九])?折")
_ZHE_NUM = re.compile(r"(\d(?:\.\d)?)\s*折")
_POINTS = re.compile(r"([0-9]+|[十一二两三四五六七八九]{1,3})\s*个点")


def _cn_number(text: str) -> int | None:
    if text.isdigit():
        return int(text)
    if "十" in text:
        head, _, tail = text.partition("十")
        return (_CN_DIGIT.get(head, 1) if head else 1) * 10 + (_CN_DIGIT.get(tail, 0) if tail else 0)
    return _CN_DIGIT.get(text)


def discount_mentions(text: str) -> list[float]:
    """Percent-off figures a text offers or mentions: ``15%折扣`` 15, ``八五折`` 15, ``五折`` 50, ``十五个点`` 15."""
    out = [float(m.group(1)) for m in _PCT_AFTER.finditer(text)]
    out += [float(m.group(1)) for m in _PCT_BEFORE.finditer(text)]
    for m in _ZHE_CN.finditer(text):
        tenths = _CN_DIGIT[m.group(1)] * 10 + (_CN_DIGIT[m.group(2)] if m.group(2) else 0)
        out.append(100.0 - tenths)
    for m in _ZHE_NUM.finditer(text):
        out.append(round(100.0 - float(m.group(1)) * 10, 1))
    for m in _POINTS.finditer(text):
        n = _cn_number(m.group(1))
        if n is not None:
            out.append(float(n))
    return out


def _all_text(s: Suggestion) -> str:
    change = json.dumps(s.proposed_change.fields, ensure_ascii=False) if s.proposed_change else ""
    return f"{s.title}\n{s.rationale}\n{change}"


def vet(s: Suggestion, ev: EvidenceSet) -> str | None:
    """Why ``s`` must not be shown (None = safe)."""
    text = _all_text(s)
    if looks_like_injection(text):
        return "instruction_text"
    cap = ev.discount_caps.get(ev.facts.customer.tier or "")
    offered = discount_mentions(text)
    if offered and (cap is None or max(offered) > cap):
        return "discount_beyond_policy"
    change = s.proposed_change
    if s.action_type == "update_stage" or (change and change.op == "update_stage"):
        if not change or change.op != "update_stage":
            return "stage_change_without_change"
        if any(c.kind != "crm" for c in s.citations):
            return "stage_change_not_from_crm"
        stage = str(change.fields.get("stage", ""))
        opp = next(
            (o for o in ev.facts.customer.opportunities if o.id == change.fields.get("opportunity_id")), None
        )
        if stage not in STAGES or stage in ("赢单", "输单") or opp is None or opp.stage in ("赢单", "输单"):
            return "stage_change_not_allowed"
    return None


def clean_change(raw: Any, customer_id: str) -> ProposedChange | None:
    """A proposal the CRM port accepts, always for this customer; anything else is dropped."""
    if not isinstance(raw, dict) or raw.get("op") not in CHANGE_OPS:
        return None
    fields = dict(raw.get("fields") or {}) if isinstance(raw.get("fields"), dict) else {}
    fields["customer_id"] = customer_id
    try:
        draft = draft_for(str(raw["op"]), fields)
    except (ValueError, TypeError):
        return None
    return ProposedChange(str(raw["op"]), draft_fields(draft))


# -- finalize -------------------------------------------------------------------------------------


def fingerprint(customer_id: str, action_type: str, citations: tuple[Citation, ...] | list[Citation]) -> str:
    """Same customer, action type and evidence → same suggestion (DESIGN §7)."""
    keys = sorted({f"{c.kind}:{c.ref}:{c.locator}" for c in citations})
    return hashlib.sha256("|".join([customer_id, action_type, *keys]).encode()).hexdigest()


def finalize(
    drafts: list[Draft],
    ev: EvidenceSet,
    *,
    mode: str = "offline",
    note: str | None = None,
    fallback: Callable[[Evidence], str] | None = None,
) -> PlanResult:
    """Drafts → shown suggestions. ``fallback(evidence)`` is the quote of a claim cited by reference
    without a usable phrase (``citations.validate``)."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    result = PlanResult(suggestions=[], mode=mode, note=note)
    seen: set[str] = set()
    customer_id = ev.facts.customer.id
    for d in drafts:
        citations, dropped = validate(d.claims, ev.items, fallback=fallback)
        result.dropped_citations += len(dropped)
        if not citations:
            result.dropped_suggestions += 1
            continue
        action = d.action_type if d.action_type in ACTION_TYPES else "other"
        fp = fingerprint(customer_id, action, citations)
        if fp in seen:
            continue
        s = Suggestion(
            id=f"sg_{fp[:16]}",
            customer_id=customer_id,
            action_type=action,
            title=d.title.strip()[:200],
            rationale=d.rationale.strip()[:1000],
            confidence=round(min(1.0, max(0.0, float(d.confidence))), 2),
            citations=tuple(citations),
            proposed_change=d.proposed_change,
            status="proposed",
            created_at=now,
        )
        reason = vet(s, ev)
        if reason:
            result.unsafe.append(reason)
            result.dropped_suggestions += 1
            continue
        seen.add(fp)
        result.suggestions.append(s)
    result.suggestions.sort(key=lambda s: s.confidence, reverse=True)
    return result


def offline_drafts(ev: EvidenceSet) -> list[Draft]:
    return [d for d in (draft_for_trigger(t, ev) for t in ev.triggers) if d is not None]


def plan_offline(ev: EvidenceSet, *, note: str | None = None) -> PlanResult:
    return finalize(offline_drafts(ev), ev, mode="offline", note=note)


__all__ = [
    "Draft",
    "PlanResult",
    "clean_change",
    "discount_mentions",
    "finalize",
    "fingerprint",
    "offline_drafts",
    "pick_sentence",
    "plan_offline",
    "vet",
]
