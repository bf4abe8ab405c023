"""Adoption arithmetic on a hand-computed event log (unit tier: pure functions, no database).

The log: 3 reps in 2 teams, 8 suggestions. ``now`` = 2026-03-31 12:00 UTC.

| id | rep | team | type            | docs   | shown        | events                                 | counts as         |
|----|-----|------|-----------------|--------|--------------|----------------------------------------|-------------------|
| r1 | a1  | t_a  | schedule_visit  | d1     | 03-01 10:00  | accepted +2h, applied +3h              | accepted, applied |
| r2 | a1  | t_a  | send_material   | d1 d2  | 03-02 09:00  | edited +6h                             | edited            |
| r3 | a1  | t_a  | send_material   | d2     | 03-03 09:00  | dismissed +24h "不相关：…"             | dismissed         |
| r4 | a2  | t_a  | schedule_visit  | –      | 03-05 09:00  | –  (26 days)                           | ignored           |
| r5 | a2  | t_a  | care_task       | d1     | 03-28 09:00  | –  (3 days)                            | pending           |
| r6 | b1  | t_b  | schedule_visit  | d2     | 03-10 09:00  | accepted +1h, then dismissed +30h      | dismissed         |
| r7 | b1  | t_b  | other           | d1     | never        | proposed only                          | not counted       |
| r8 | b1  | t_b  | follow_up_quote | d1     | 03-12 09:00  | applied +4h (no feedback)              | accepted, applied |

shown 7 · accepted 2 (r1 r8) · edited 1 · dismissed 2 · ignored 1 · applied 2 · rate 3/7.
Time to action (first action): 2, 6, 24, 1, 4 h → median 4, mean 7.4.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from connectors.crm.base import CustomerSnapshot, Opportunity, StageEntry
from copilot.features.adoption.events import Event, fold
from copilot.features.adoption.metrics import (
    Filters,
    breakdown,
    counts,
    most_dismissed,
    time_to_action,
    trend,
)
from copilot.features.adoption.outcomes import outcomes

NOW = datetime(2026, 3, 31, 12, tzinfo=UTC)


def at(day: int, hour: int = 9) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


def kb(*docs: str) -> list[dict]:
    return [{"kind": "kb", "ref": f"{d}#1", "source": d, "quote": "q"} for d in docs] + [
        {"kind": "crm", "ref": "c.profile", "source": "c.profile", "quote": "q"}
    ]


def record(sid, rep, team, customer, action_type, docs, events):
    base = {"id": sid, "user_id": rep, "team_id": team, "customer_id": customer, "action_type": action_type,
            "title": f"建议{sid}", "citations": kb(*docs)}  # fmt: skip
    return fold(base, [Event(*e) for e in events])


def h(t: datetime, hours: float) -> datetime:
    return t + timedelta(hours=hours)


RECORDS = [
    record("r1", "a1", "t_a", "c1", "schedule_visit", ["d1"],
           [("proposed", at(1, 9)), ("shown", at(1, 10), "web"), ("accepted", h(at(1, 10), 2)),
            ("applied", h(at(1, 10), 3))]),
    record("r2", "a1", "t_a", "c1", "send_material", ["d1", "d2"],
           [("shown", at(2), "wecom"), ("edited", h(at(2), 6), "web", {"edited_fields": ["title"]})]),
    record("r3", "a1", "t_a", "c2", "send_material", ["d2"],
           [("shown", at(3), "web"), ("dismissed", h(at(3), 24), "web", {"comment": "不相关：客户不用"})]),
    record("r4", "a2", "t_a", "c3", "schedule_visit", [], [("shown", at(5), "wecom")]),
    record("r5", "a2", "t_a", "c3", "care_task", ["d1"], [("shown", at(28), "web")]),
    record("r6", "b1", "t_b", "c4", "schedule_visit", ["d2"],
           [("dismissed", h(at(10), 30)), ("shown", at(10), "dingtalk"), ("accepted", h(at(10), 1))]),
    record("r7", "b1", "t_b", "c4", "other", ["d1"], [("proposed", at(11))]),
    record("r8", "b1", "t_b", "c5", "follow_up_quote", ["d1"],
           [("shown", at(12), "web"), ("applied", h(at(12), 4), "web", {"op": "create_task"})]),
]  # fmt: skip


def row(shown, accepted=0, edited=0, dismissed=0, ignored=0, applied=0, rate=None):
    return {"shown": shown, "accepted": accepted, "edited": edited, "dismissed": dismissed,
            "ignored": ignored, "applied": applied, "adoption_rate": rate}  # fmt: skip


def test_outcome_of_each_suggestion_follows_the_counting_rules():
    assert [r.outcome(NOW) for r in RECORDS] == [
        "accepted", "edited", "dismissed", "ignored", "pending", "dismissed", "not_shown", "accepted",
    ]  # fmt: skip
    assert RECORDS[2].dismiss_reason == "不相关"
    assert RECORDS[5].dismiss_reason == "未填写"
    assert RECORDS[1].edited_fields == ("title",)


def test_ignored_needs_seven_full_days_without_action():
    r = record("x", "a1", "t_a", "c1", "other", [], [("shown", at(1))])
    assert r.outcome(at(8) - timedelta(seconds=1)) == "pending"
    assert r.outcome(at(8)) == "ignored"


def test_totals_match_the_hand_computed_log():
    assert counts(RECORDS, NOW) == row(
        7, accepted=2, edited=1, dismissed=2, ignored=1, applied=2, rate=0.4286
    )


def test_time_to_action_runs_from_shown_to_the_first_action():
    assert time_to_action(RECORDS) == {"n": 5, "median_hours": 4.0, "mean_hours": 7.4}


def test_breakdowns_by_rep_team_type_document_and_channel():
    by_rep = breakdown(RECORDS, NOW, "rep_id", lambda r: [r.user_id])
    assert by_rep == [
        {"rep_id": "a1", **row(3, accepted=1, edited=1, dismissed=1, applied=1, rate=0.6667)},
        {"rep_id": "a2", **row(2, ignored=1, rate=0.0)},
        {"rep_id": "b1", **row(2, accepted=1, dismissed=1, applied=1, rate=0.5)},
    ]
    by_team = breakdown(RECORDS, NOW, "team_id", lambda r: [r.team_id])
    assert by_team == [
        {"team_id": "t_a", **row(5, accepted=1, edited=1, dismissed=1, ignored=1, applied=1, rate=0.4)},
        {"team_id": "t_b", **row(2, accepted=1, dismissed=1, applied=1, rate=0.5)},
    ]
    by_type = breakdown(RECORDS, NOW, "action_type", lambda r: [r.action_type])
    assert by_type == [
        {
            "action_type": "schedule_visit",
            **row(3, accepted=1, dismissed=1, ignored=1, applied=1, rate=0.3333),
        },
        {"action_type": "send_material", **row(2, edited=1, dismissed=1, rate=0.5)},
        {"action_type": "care_task", **row(1, rate=0.0)},
        {"action_type": "follow_up_quote", **row(1, accepted=1, applied=1, rate=1.0)},
    ]
    # A suggestion citing two documents counts once under each of them; r7 (never shown) nowhere.
    by_doc = breakdown(RECORDS, NOW, "source", lambda r: r.documents)
    assert by_doc == [
        {"source": "d1", **row(4, accepted=2, edited=1, applied=2, rate=0.75)},
        {"source": "d2", **row(3, edited=1, dismissed=2, rate=0.3333)},
    ]
    by_channel = {r["channel"]: r["shown"] for r in breakdown(RECORDS, NOW, "channel", lambda r: [r.channel])}
    assert by_channel == {"web": 4, "wecom": 2, "dingtalk": 1}


@pytest.mark.parametrize(
    ("filters", "expected_ids"),
    [
        (Filters(team="t_a"), {"r1", "r2", "r3", "r4", "r5"}),
        (Filters(rep="b1"), {"r6", "r8"}),
        (Filters(action_type="send_material"), {"r2", "r3"}),
        (Filters(document="d2"), {"r2", "r3", "r6"}),
        (Filters(date_from=date(2026, 3, 1), date_to=date(2026, 3, 5)), {"r1", "r2", "r3", "r4"}),
        (Filters(channel="wecom", team="t_a"), {"r2", "r4"}),
    ],
)
def test_filters_select_by_team_rep_type_document_and_shown_date(filters, expected_ids):
    assert {r.id for r in filters.apply(RECORDS)} == expected_ids


def test_weekly_trend_fills_empty_weeks():
    weeks = trend(RECORDS, NOW)
    assert [(w["period"], w["shown"], w["adoption_rate"]) for w in weeks] == [
        ("2026-02-23", 1, 1.0),
        ("2026-03-02", 3, 0.3333),
        ("2026-03-09", 2, 0.5),
        ("2026-03-16", 0, None),
        ("2026-03-23", 1, 0.0),
    ]


def test_most_dismissed_groups_by_suggestion_with_reasons():
    top = most_dismissed(RECORDS, NOW)
    assert [(r["title"], r["dismissed"], r["reasons"]) for r in top] == [
        ("建议r6", 1, [{"reason": "未填写", "count": 1}]),  # ties: by action type, then title
        ("建议r3", 1, [{"reason": "不相关", "count": 1}]),
    ]


# -- outcomes joined from the CRM -----------------------------------------------------------------
def opp(oid, stage, history, created=None):
    return Opportunity(id=oid, name=oid, stage=stage, created=created or history[0][1],
                       stage_history=tuple(StageEntry(s, d) for s, d in history))  # fmt: skip


SNAPSHOTS = {
    # r1, r2 (adopted): moved on to 需求确认 on 03-15, within 30 days of being shown; still open.
    "c1": CustomerSnapshot(id="c1", name="c1", opportunities=(
        opp("o1", "需求确认", [("线索", "2026-01-01"), ("需求确认", "2026-03-15")]),)),
    # r3 (dismissed): lost on 03-20 (a move to 输单 is not an advance).
    "c2": CustomerSnapshot(id="c2", name="c2", opportunities=(
        opp("o2", "输单", [("线索", "2026-01-10"), ("输单", "2026-03-20")]),)),
    # r4 (ignored): its only deal was won before the suggestion was shown: no open opportunity.
    "c3": CustomerSnapshot(id="c3", name="c3", opportunities=(
        opp("o3", "赢单", [("线索", "2025-10-01"), ("赢单", "2026-02-01")]),)),
    # r6 (dismissed): advanced only after 30 days (05-01), later won.
    "c4": CustomerSnapshot(id="c4", name="c4", opportunities=(
        opp("o4", "赢单", [("线索", "2025-12-01"), ("方案报价", "2026-05-01"), ("赢单", "2026-05-20")]),)),
    # r8 (adopted): the customer is gone from the CRM.
    "c5": None,
}  # fmt: skip


def test_outcomes_count_advances_and_closed_opportunities_per_group():
    result = outcomes(RECORDS, SNAPSHOTS, NOW, window_days=30, min_closed=0)
    assert result["comparable"] is True
    assert result["groups"] == {
        "adopted": {"suggestions": 3, "with_open_opportunity": 2, "advanced": 2, "closed_opportunities": 0,
                    "won": 0, "lost": 0, "advanced_rate": 1.0, "win_rate": None},
        "not_adopted": {"suggestions": 3, "with_open_opportunity": 2, "advanced": 0, "closed_opportunities": 2,
                        "won": 1, "lost": 1, "advanced_rate": 0.0, "win_rate": 0.5},
    }  # fmt: skip
    assert "相关性" in result["note"] and "不是因果" in result["note"]


def many(group: str, n: int, won: int, start: int) -> tuple[list, dict]:
    records, snaps = [], {}
    for i in range(n):
        cid = f"{group}{start + i}"
        events = [("shown", at(1))] + (
            [("accepted", at(2))] if group == "adopted" else [("dismissed", at(2))]
        )
        records.append(record(cid, "a1", "t_a", cid, "other", [], events))
        snaps[cid] = CustomerSnapshot(id=cid, name=cid, opportunities=(
            opp("o", "赢单" if i < won else "输单", [("线索", "2026-01-01"), ("赢单" if i < won else "输单", "2026-03-20")]),))  # fmt: skip
    return records, snaps


def test_no_comparison_under_thirty_closed_opportunities_per_group():
    adopted, s1 = many("adopted", 30, won=20, start=0)
    dismissed, s2 = many("not_adopted", 29, won=12, start=100)
    gated = outcomes(adopted + dismissed, {**s1, **s2}, NOW)
    assert gated["comparable"] is False
    assert gated["min_closed_per_group"] == 30
    assert gated["groups"]["adopted"]["closed_opportunities"] == 30
    assert gated["groups"]["not_adopted"]["closed_opportunities"] == 29
    assert all(g["win_rate"] is None and g["advanced_rate"] is None for g in gated["groups"].values())
    assert "样本不足" in gated["note"] and "30" in gated["note"] and "不是因果" in gated["note"]

    more, s3 = many("not_adopted", 1, won=0, start=200)
    open_ = outcomes(adopted + dismissed + more, {**s1, **s2, **s3}, NOW)
    assert open_["comparable"] is True
    assert open_["groups"]["adopted"]["win_rate"] == round(20 / 30, 4)
    assert open_["groups"]["not_adopted"]["win_rate"] == 0.4
    assert "样本不足" not in open_["note"] and "不是因果" in open_["note"]
