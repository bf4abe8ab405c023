"""Pure adoption metrics over folded suggestion records (no database, no clock: ``now`` is passed in).

Every count is over suggestions *shown* (in the filtered period, by the day they were shown):
``adoption_rate = (accepted + edited) / shown`` (None when nothing was shown).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from copilot.features.adoption.events import SuggestionRecord

COUNT_KEYS = ("shown", "accepted", "edited", "dismissed", "ignored", "applied", "adoption_rate")


@dataclass(frozen=True, slots=True)
class Filters:
    team: str | None = None
    rep: str | None = None
    action_type: str | None = None
    document: str | None = None
    channel: str | None = None
    date_from: date | None = None  # inclusive, by the day the suggestion was shown (UTC)
    date_to: date | None = None  # inclusive

    def keep(self, r: SuggestionRecord) -> bool:
        if r.shown_at is None:
            return False
        day = r.shown_at.date()
        return (
            (self.team is None or r.team_id == self.team)
            and (self.rep is None or r.user_id == self.rep)
            and (self.action_type is None or r.action_type == self.action_type)
            and (self.document is None or self.document in r.documents)
            and (self.channel is None or r.channel == self.channel)
            and (self.date_from is None or day >= self.date_from)
            and (self.date_to is None or day <= self.date_to)
        )

    def apply(self, records: Iterable[SuggestionRecord]) -> list[SuggestionRecord]:
        return [r for r in records if self.keep(r)]


def rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def counts(records: Iterable[SuggestionRecord], now: datetime) -> dict[str, Any]:
    """The §5.5 counters for shown suggestions."""
    c = Counter()
    for r in records:
        if r.shown_at is None:
            continue
        c["shown"] += 1
        outcome = r.outcome(now)
        if outcome in ("accepted", "edited", "dismissed", "ignored"):
            c[outcome] += 1
        if r.applied_at is not None:
            c["applied"] += 1
    out: dict[str, Any] = {k: c[k] for k in COUNT_KEYS[:-1]}
    out["adoption_rate"] = rate(c["accepted"] + c["edited"], c["shown"])
    return out


def breakdown(
    records: Iterable[SuggestionRecord],
    now: datetime,
    key_name: str,
    keys_of: Callable[[SuggestionRecord], Iterable[str | None]],
) -> list[dict[str, Any]]:
    """Counters per key (a record may count under several keys, e.g. every document it cites);
    sorted by shown (desc), then key."""
    groups: dict[str, list[SuggestionRecord]] = defaultdict(list)
    for r in records:
        if r.shown_at is None:
            continue
        for key in keys_of(r):
            groups[key if key is not None else ""].append(r)
    rows = [{key_name: key, **counts(rs, now)} for key, rs in groups.items()]
    rows.sort(key=lambda row: (-row["shown"], row[key_name]))
    return rows


def time_to_action(records: Iterable[SuggestionRecord]) -> dict[str, Any]:
    hours = [h for r in records if (h := r.hours_to_action) is not None]
    if not hours:
        return {"n": 0, "median_hours": None, "mean_hours": None}
    return {
        "n": len(hours),
        "median_hours": round(statistics.median(hours), 2),
        "mean_hours": round(statistics.fmean(hours), 2),
    }


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def trend(records: Sequence[SuggestionRecord], now: datetime) -> list[dict[str, Any]]:
    """Counters per ISO week (Monday) in which suggestions were shown, oldest first, gaps filled."""
    shown = [r for r in records if r.shown_at is not None]
    if not shown:
        return []
    rows = {
        row["period"]: row
        for row in breakdown(shown, now, "period", lambda r: [week_start(r.shown_at.date()).isoformat()])
    }
    first = week_start(min(r.shown_at for r in shown).date())
    last = week_start(max(r.shown_at for r in shown).date())
    out, week = [], first
    while week <= last:
        key = week.isoformat()
        out.append(rows.get(key) or {"period": key, **counts([], now)})
        week += timedelta(days=7)
    return out


def most_dismissed(
    records: Iterable[SuggestionRecord], now: datetime, limit: int = 10
) -> list[dict[str, Any]]:
    """Suggestions (same action type and title) dismissed most often, with the reasons given."""
    groups: dict[tuple[str, str], list[SuggestionRecord]] = defaultdict(list)
    for r in records:
        if r.outcome(now) == "dismissed":
            groups[(r.action_type, r.title)].append(r)
    rows = []
    for (action_type, title), rs in groups.items():
        reasons = Counter(r.dismiss_reason or "未填写" for r in rs)
        rows.append(
            {
                "action_type": action_type,
                "title": title,
                "dismissed": len(rs),
                "reasons": [{"reason": k, "count": v} for k, v in reasons.most_common()],
                "comments": sorted({r.comment for r in rs if r.comment})[:5],
                "suggestion_ids": sorted(r.id for r in rs),
            }
        )
    rows.sort(key=lambda row: (-row["dismissed"], row["action_type"], row["title"]))
    return rows[:limit]


def dismiss_reasons(records: Iterable[SuggestionRecord], now: datetime) -> list[dict[str, Any]]:
    c = Counter(r.dismiss_reason or "未填写" for r in records if r.outcome(now) == "dismissed")
    return [{"reason": k, "count": v} for k, v in c.most_common()]


def knowledge_reuse(
    records: Iterable[SuggestionRecord], now: datetime, ratings: dict[str, dict[str, int]] | None = None
) -> list[dict[str, Any]]:
    """Per cited KB document: how many shown suggestions cite it, how many of those were adopted,
    by how many reps, and its talk-track ratings."""
    ratings = ratings or {}
    rows = []
    for row in breakdown(records, now, "source", lambda r: r.documents):
        source = row["source"]
        reps = {r.user_id for r in records if r.shown_at is not None and source in r.documents}
        rated = ratings.get(source, {})
        rows.append(
            {
                "source": source,
                "cited": row["shown"],
                "adopted": row["accepted"] + row["edited"],
                "reuse_rate": row["adoption_rate"],
                "reps": len(reps),
                "effective": rated.get("effective", 0),
                "partial": rated.get("partial", 0),
                "ineffective": rated.get("ineffective", 0),
            }
        )
    known = {row["source"] for row in rows}
    for source, rated in sorted(ratings.items()):  # rated but not cited in this period
        if source not in known:
            rows.append({"source": source, "cited": 0, "adopted": 0, "reuse_rate": None, "reps": 0,
                         "effective": rated.get("effective", 0), "partial": rated.get("partial", 0),
                         "ineffective": rated.get("ineffective", 0)})  # fmt: skip
    return rows
