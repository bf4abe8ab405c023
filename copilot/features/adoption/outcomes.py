"""Outcomes joined from the CRM: did the customer's deal move on after a suggestion was adopted?

For each shown suggestion with a verdict — adopted (accepted / edited) or not adopted (dismissed /
ignored); pending ones wait — we look at the customer's opportunities that were open on the day it
was shown:

- *advanced*: one of them entered a later stage (not 输单) within ``window_days`` after that day;
- *closed*: one of them was later won (赢单) or lost (输单). Closed opportunities are counted once per
  group, so a busy customer does not count twice.

The two groups are compared only when each has at least ``min_closed`` closed opportunities; below
that, only the counts are reported. Either way it is correlation, not cause.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from connectors.crm.base import CustomerSnapshot, Opportunity
from copilot.features.adoption.events import SuggestionRecord
from copilot.features.adoption.metrics import rate

WON, LOST = "赢单", "输单"
DEFAULT_WINDOW_DAYS = 30
MIN_CLOSED_PER_GROUP = 30
CORRELATION_NOTE = (
    "说明：以下只是相关性，不是因果。采纳建议的销售和客户本身可能就更积极、跟进更勤，"
    "所以“采纳组”推进或赢单更多，并不能证明是建议带来的。"
)


def _day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def closed_on(opp: Opportunity) -> tuple[str, date] | None:
    """(赢单|输单, date) when the opportunity is closed."""
    if opp.stage not in (WON, LOST):
        return None
    entered = [_day(h.entered) for h in opp.stage_history if h.stage == opp.stage]
    day = next((d for d in reversed(entered) if d), None) or _day(opp.stage_entered)
    return (opp.stage, day) if day else None


def open_on(opp: Opportunity, day: date) -> bool:
    created = _day(opp.created) or min((d for h in opp.stage_history if (d := _day(h.entered))), default=None)
    if created is not None and created > day:
        return False
    closed = closed_on(opp)
    return closed is None or closed[1] > day


def advanced_within(opp: Opportunity, day: date, window_days: int) -> bool:
    end = day + timedelta(days=window_days)
    return any(
        h.stage != LOST and (d := _day(h.entered)) is not None and day < d <= end for h in opp.stage_history
    )


def group_of(record: SuggestionRecord, now: datetime) -> str | None:
    outcome = record.outcome(now)
    if outcome in ("accepted", "edited"):
        return "adopted"
    if outcome in ("dismissed", "ignored"):
        return "not_adopted"
    return None


def outcomes(
    records: Iterable[SuggestionRecord],
    snapshots: Mapping[str, CustomerSnapshot | None],
    now: datetime,
    *,
    window_days: int = DEFAULT_WINDOW_DAYS,
    min_closed: int = MIN_CLOSED_PER_GROUP,
) -> dict[str, Any]:
    groups: dict[str, dict[str, Any]] = {
        g: {"suggestions": 0, "with_open_opportunity": 0, "advanced": 0, "closed": {}}
        for g in ("adopted", "not_adopted")
    }
    for r in records:
        group = group_of(r, now)
        snap = snapshots.get(r.customer_id)
        if group is None or r.shown_at is None:
            continue
        g = groups[group]
        g["suggestions"] += 1
        day = r.shown_at.date()
        live = [o for o in (snap.opportunities if snap else ()) if open_on(o, day)]
        if not live:
            continue
        g["with_open_opportunity"] += 1
        if any(advanced_within(o, day, window_days) for o in live):
            g["advanced"] += 1
        for o in live:
            if (closed := closed_on(o)) is not None:
                g["closed"][f"{r.customer_id}/{o.id}"] = closed[0]
    out_groups = {}
    for name, g in groups.items():
        closed = g.pop("closed")
        won = sum(1 for stage in closed.values() if stage == WON)
        out_groups[name] = {**g, "closed_opportunities": len(closed), "won": won, "lost": len(closed) - won}
    comparable = all(g["closed_opportunities"] >= min_closed for g in out_groups.values())
    for g in out_groups.values():
        g["advanced_rate"] = rate(g["advanced"], g["with_open_opportunity"]) if comparable else None
        g["win_rate"] = rate(g["won"], g["closed_opportunities"]) if comparable else None
    note = CORRELATION_NOTE
    if not comparable:
        note = (
            f"样本不足，暂不对比：每组至少需要 {min_closed} 个已关单商机"
            f"（当前 采纳组 {out_groups['adopted']['closed_opportunities']} 个，"
            f"未采纳组 {out_groups['not_adopted']['closed_opportunities']} 个）。" + note
        )
    return {
        "window_days": window_days,
        "min_closed_per_group": min_closed,
        "comparable": comparable,
        "groups": out_groups,
        "note": note,
    }
