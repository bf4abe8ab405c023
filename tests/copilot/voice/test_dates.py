"""Relative Chinese due dates, resolved against the recording day (2026-11-12 is a Thursday)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from copilot.voice.extract.dates import chinese_number, resolve_due

THURSDAY = date(2026, 11, 12)


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        ("明天把报价发过去", "2026-11-13", "on"),
        ("后天再去一趟", "2026-11-14", "on"),
        ("大后天", "2026-11-15", "on"),
        ("今天下班前", "2026-11-12", "on"),
        ("下周三之前把方案发给黄总监", "2026-11-18", "by"),
        ("下周一约曹总", "2026-11-16", "on"),
        ("下个星期二", "2026-11-17", "on"),
        ("下礼拜五", "2026-11-20", "on"),
        ("下下周一", "2026-11-23", "on"),
        ("本周五", "2026-11-13", "on"),
        ("这周三", "2026-11-11", "on"),  # already past: still this week's Wednesday, as said
        ("周五前", "2026-11-13", "by"),
        ("周三", "2026-11-18", "on"),  # a bare weekday is the next one after today
        ("周四", "2026-11-19", "on"),  # …never today itself
        ("星期天", "2026-11-15", "on"),
        ("这周提交申请", "2026-11-13", "by"),  # this week → its Friday
        ("下周给个答复", "2026-11-20", "by"),  # next week → its Friday
        ("月底前", "2026-11-30", "by"),
        ("这个月底", "2026-11-30", "by"),
        ("下个月底", "2026-12-31", "by"),
        ("下个月15号之前把建议发过去", "2026-12-15", "by"),  # a day of next month, not its end
        ("十二月中旬再来拜访", "2026-12-20", "by"),  # that month's middle third, not this month's 15th
        ("三月底前定下来", "2027-03-31", "by"),  # a month long past this year: next year's
        ("月中", "2026-11-15", "on"),
        ("下个月再说", "2026-12-31", "by"),
        ("两周内", "2026-11-26", "by"),
        ("两个星期之内", "2026-11-26", "by"),
        ("一周内", "2026-11-19", "by"),
        ("三天内", "2026-11-15", "by"),
        ("10天之内", "2026-11-22", "by"),
        ("一个月内", "2026-12-12", "by"),
        ("半个月内", "2026-11-27", "by"),
        ("三天后", "2026-11-15", "on"),
        ("12月5号", "2026-12-05", "on"),
        ("十二月五日之前", "2026-12-05", "by"),
        ("1月8号", "2027-01-08", "on"),  # said in November: next January
        ("20号", "2026-11-20", "on"),
        ("5号", "2026-12-05", "on"),  # the 5th has passed this month
        ("年底前", "2026-12-31", "by"),
        ("季度末", "2026-12-31", "by"),
        ("周末", "2026-11-14", "on"),
        ("下周末", "2026-11-21", "on"),
        ("过两天", "2026-11-14", "on"),
    ],
)
def test_relative_dates_resolve_against_the_recording_day(text, expected, kind):
    due = resolve_due(text, THURSDAY)
    assert due is not None, text
    assert (due.iso(), due.kind) == (expected, kind)


@pytest.mark.parametrize(
    "text", ["尽快把资料发过去", "春节后再说", "过段时间", "等集团的规划出来", "我们聊了三个小时"]
)
def test_what_cannot_be_pinned_to_a_day_is_none(text):
    assert resolve_due(text, THURSDAY) is None


def test_the_phrase_is_the_span_that_gave_the_date():
    due = resolve_due("下一步，下周一之前把 TCO 测算发给黄总监", THURSDAY)
    assert due is not None and due.phrase == "下周一之前"


def test_the_first_date_in_the_text_wins():
    assert resolve_due("明天约售前，下周三之前发方案", THURSDAY).iso() == "2026-11-13"


def test_a_datetime_is_resolved_by_its_day():
    assert resolve_due("明天", datetime(2026, 12, 31, 23, 30)).iso() == "2027-01-01"


def test_month_end_knows_short_months_and_leap_years():
    assert resolve_due("月底前", date(2028, 2, 3)).iso() == "2028-02-29"
    assert resolve_due("下个月底", date(2027, 1, 31)).iso() == "2027-02-28"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("三", 3),
        ("十", 10),
        ("十二", 12),
        ("二十五", 25),
        ("两", 2),
        ("31", 31),
        ("３", 3),
        ("百", None),
        ("", None),
    ],
)
def test_chinese_numbers(text, value):
    assert chinese_number(text) == value


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)), st.sampled_from("一二三四五六日"))
def test_next_week_weekday_is_always_in_the_next_calendar_week(today, day):
    due = resolve_due(f"下周{day}", today).date
    next_monday = today - timedelta(days=today.weekday()) + timedelta(weeks=1)
    assert next_monday <= due < next_monday + timedelta(weeks=1)


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)), st.sampled_from("一二三四五六日"))
def test_a_bare_weekday_is_within_the_coming_seven_days(today, day):
    due = resolve_due(f"周{day}", today).date
    assert today < due <= today + timedelta(days=7)


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)))
def test_deadlines_never_fall_before_the_recording_day(today):
    for text in ("这周", "下周", "月底前", "两周内", "明天", "年底前", "季度末"):
        assert resolve_due(text, today).date >= today, text
