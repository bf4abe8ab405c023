"""Relative Chinese dates in spoken memos → calendar dates, resolved against the recording time.

    resolve_due("下周三之前把报价发过去", date(2026, 11, 12))  # DueDate(date(2026, 11, 18), "下周三", "by")

Weeks start on Monday (so on a Thursday 下周三 is six days later). A bare weekday (周三) is the next one
after the recording day. Vague ends ("这周"/"下周"/"月底"/"两周内") become the last working day or the
last day of that span, marked ``kind="by"`` (a deadline) rather than ``"on"``. What cannot be pinned to a
day (尽快, 春节后, 过段时间) returns None: the extractor reports "no due date" instead of guessing.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "俩": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "末": 5}
_NUM = r"[0-9０-９零〇一二两俩三四五六七八九十]{1,3}"
_WEEK = r"(?:周|星期|礼拜)"
_BEFORE = r"(?:之前|以前|前|之内|以内|内|为止)?"


@dataclass(frozen=True, slots=True)
class DueDate:
    date: date
    phrase: str  # the span of the text that gave the date
    kind: str  # "on": that day; "by": a deadline ("月底前", "两周内", "下周")

    def iso(self) -> str:
        return self.date.isoformat()


def chinese_number(text: str) -> int | None:
    """ "3", "三", "十二", "二十五", "两" → int; None for anything else."""
    text = text.translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    if text.isdigit():
        return int(text)
    if not text or any(ch not in _DIGITS and ch != "十" for ch in text):
        return None
    if "十" not in text:
        return _DIGITS[text] if len(text) == 1 else None
    tens, _, ones = text.partition("十")
    if len(ones) > 1 or len(tens) > 1:
        return None
    value = (_DIGITS[tens] if tens else 1) * 10
    return value + (_DIGITS[ones] if ones else 0)


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _add_months(day: date, months: int) -> date:
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _week_deadline(monday: date, today: date) -> date:
    """A "this/next week" deadline: that week's Friday, or its Sunday once Friday has passed."""
    friday = monday + timedelta(days=4)
    return friday if friday >= today else monday + timedelta(days=6)


def _weekday(match: re.Match[str], today: date) -> tuple[date, str]:
    prefix, day = match.group("prefix") or "", match.group("day")
    weekday = _WEEKDAYS[day]
    if prefix.startswith(("下下", "下个下")):
        return _monday(today) + timedelta(weeks=2, days=weekday), "on"
    if prefix.startswith("下"):
        return _monday(today) + timedelta(weeks=1, days=weekday), "on"
    if prefix.startswith("上"):
        return _monday(today) - timedelta(weeks=1) + timedelta(days=weekday), "on"
    if prefix in ("这", "这个", "本", "今"):
        return _monday(today) + timedelta(days=weekday), "on"
    ahead = (weekday - today.weekday()) % 7 or 7  # a bare "周三" is the next Wednesday after today
    return today + timedelta(days=ahead), "on"


def _relative_day(word: str, today: date) -> date:
    offsets = {"今天": 0, "今晚": 0, "今儿": 0, "当天": 0, "明天": 1, "明早": 1, "明晚": 1, "明儿": 1,
               "后天": 2, "大后天": 3}  # fmt: skip
    return today + timedelta(days=offsets[word])


def _span(amount: int, unit: str, today: date) -> date:
    if unit in ("天", "日"):
        return today + timedelta(days=amount)
    if unit in ("周", "个星期", "星期", "个礼拜", "礼拜"):
        return today + timedelta(weeks=amount)
    return _add_months(today, amount)  # 个月 / 月


def _calendar_date(month: int | None, day: int, today: date) -> date | None:
    if not 1 <= day <= 31:
        return None
    year = today.year
    if month is None:  # "15号": this month, or next month once it has passed
        month = today.month
        candidate = _safe_date(year, month, day)
        if candidate is not None and candidate < today:
            nxt = _add_months(date(year, month, 1), 1)
            candidate = _safe_date(nxt.year, nxt.month, day)
        return candidate
    if not 1 <= month <= 12:
        return None
    candidate = _safe_date(year, month, day)
    if candidate is not None and (today - candidate).days > 60:  # "1月5号" said in November: next year
        candidate = _safe_date(year + 1, month, day)
    return candidate


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


# Ordered: the first pattern that matches (leftmost within each pattern) wins; longer phrases come first.
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("md", re.compile(rf"(?P<month>{_NUM})月(?P<day>{_NUM})(?:号|日){_BEFORE}")),
    (
        "weekday",
        re.compile(
            rf"(?P<prefix>下下个?|下个?|上个?|这个?|本|今)?{_WEEK}(?P<day>[一二三四五六日天]){_BEFORE}"
        ),
    ),
    ("weekend", re.compile(rf"(?P<prefix>下下个?|下个?|这个?|本)?{_WEEK}末{_BEFORE}")),
    ("day", re.compile(rf"(?P<word>大后天|后天|明天|明早|明晚|明儿|今天|今晚|今儿|当天){_BEFORE}")),
    (
        "span",
        re.compile(
            rf"(?P<n>{_NUM}|半)(?P<unit>天|日|个星期|星期|个礼拜|礼拜|周|个月|月)(?:之内|以内|内|之后|以后|后)"
        ),
    ),
    ("half_month", re.compile(r"半个月(?:之内|以内|内|之后|以后|后)?")),
    ("named_month_part", re.compile(rf"(?P<month>{_NUM})月(?P<part>上旬|中旬|下旬|底|末|初|中){_BEFORE}")),
    ("next_month_day", re.compile(rf"下个?月(?P<day>{_NUM})(?:号|日){_BEFORE}")),
    ("month_part", re.compile(rf"(?P<which>下个?|这个?|本|当)?月(?P<part>底|末|中|初){_BEFORE}")),
    ("next_month", re.compile(r"下个?月(?!底|末|中|初)")),
    ("week", re.compile(rf"(?P<prefix>下下个?|下个?|这个?|本){_WEEK}(?!末|[一二三四五六日天]){_BEFORE}")),
    ("year_end", re.compile(rf"(?:今年|年)底{_BEFORE}|年前")),
    ("quarter_end", re.compile(rf"(?:这个|本)?季度(?:末|底){_BEFORE}")),
    ("dom", re.compile(rf"(?<![月0-9０-９零〇一二两三四五六七八九十])(?P<day>{_NUM})(?:号|日){_BEFORE}")),
    ("few_days", re.compile(r"过(?P<n>两|几|[一二三四五六七八九十0-9])天")),
]


def resolve_due(text: str, recorded_at: date | datetime) -> DueDate | None:
    """The first date phrase in ``text`` resolved against ``recorded_at``; None if there is none."""
    today = recorded_at.date() if isinstance(recorded_at, datetime) else recorded_at
    found: list[tuple[int, DueDate]] = []
    for name, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            due = _resolve(name, match, today)
            if due is not None:
                found.append((match.start(), due))
                break
    if not found:
        return None
    return min(found, key=lambda item: item[0])[1]


def _resolve(name: str, m: re.Match[str], today: date) -> DueDate | None:
    phrase = m.group(0)
    deadline = "by" if re.search(r"(前|内|为止)$", phrase) else "on"
    if name == "md":
        month, day = chinese_number(m.group("month")), chinese_number(m.group("day"))
        resolved = _calendar_date(month, day, today) if month and day else None
        return DueDate(resolved, phrase, deadline) if resolved else None
    if name == "dom":
        day = chinese_number(m.group("day"))
        resolved = _calendar_date(None, day, today) if day else None
        return DueDate(resolved, phrase, deadline) if resolved else None
    if name == "weekday":
        resolved, _ = _weekday(m, today)
        return DueDate(resolved, phrase, deadline)
    if name == "weekend":
        prefix = m.group("prefix") or ""
        weeks = 2 if prefix.startswith("下下") else 1 if prefix.startswith("下") else 0
        saturday = _monday(today) + timedelta(weeks=weeks, days=5)
        if weeks == 0 and saturday < today:
            saturday = today
        return DueDate(saturday, phrase, deadline)
    if name == "day":
        return DueDate(_relative_day(m.group("word"), today), phrase, deadline)
    if name == "span":
        unit = m.group("unit")
        if m.group("n") == "半":
            if unit not in ("个月", "月"):
                return None
            return DueDate(today + timedelta(days=15), phrase, "by")
        amount = chinese_number(m.group("n"))
        if not amount:
            return None
        return DueDate(_span(amount, unit, today), phrase, "by" if phrase.endswith("内") else "on")
    if name == "half_month":
        return DueDate(today + timedelta(days=15), phrase, "by")
    if name == "month_part":
        base = (
            _add_months(date(today.year, today.month, 1), 1)
            if (m.group("which") or "").startswith("下")
            else today
        )
        part = m.group("part")
        if part in ("底", "末"):
            return DueDate(_month_end(base.year, base.month), phrase, "by")
        if part == "中":
            return DueDate(date(base.year, base.month, 15), phrase, deadline)
        # 月初: the start of next month unless "下月初" already moved there
        start = (
            base
            if (m.group("which") or "").startswith("下")
            else _add_months(date(today.year, today.month, 1), 1)
        )
        return DueDate(date(start.year, start.month, 5), phrase, "by")
    if name == "named_month_part":  # "十二月中旬": that month (next year once it is long past)
        month = chinese_number(m.group("month"))
        first = _calendar_date(month, 1, today) if month else None
        if first is None:
            return None
        part = m.group("part")
        day = {"上旬": 10, "中旬": 20, "初": 5, "中": 15}.get(part)
        end = date(first.year, first.month, day) if day else _month_end(first.year, first.month)
        return DueDate(end, phrase, "by" if part in ("上旬", "中旬", "下旬", "底", "末", "初") else deadline)
    if name == "next_month_day":  # "下个月15号": that day of next month
        day = chinese_number(m.group("day"))
        nxt = _add_months(date(today.year, today.month, 1), 1)
        resolved = _safe_date(nxt.year, nxt.month, day) if day else None
        return DueDate(resolved, phrase, deadline) if resolved else None
    if name == "next_month":
        nxt = _add_months(date(today.year, today.month, 1), 1)
        return DueDate(_month_end(nxt.year, nxt.month), phrase, "by")
    if name == "week":
        prefix = m.group("prefix") or ""
        weeks = 2 if prefix.startswith("下下") else 1 if prefix.startswith("下") else 0
        return DueDate(_week_deadline(_monday(today) + timedelta(weeks=weeks), today), phrase, "by")
    if name == "year_end":
        return DueDate(date(today.year, 12, 31), phrase, "by")
    if name == "quarter_end":
        month = (today.month - 1) // 3 * 3 + 3
        return DueDate(_month_end(today.year, month), phrase, "by")
    if name == "few_days":
        n = m.group("n")
        amount = 3 if n == "几" else chinese_number(n)
        return DueDate(today + timedelta(days=amount or 3), phrase, "on") if amount or n == "几" else None
    return None
