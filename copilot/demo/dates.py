"""The demo company's dates, moved so that the demo's "today" (2026-11-20, copilot/demo/README.md) is
the real today: a visit 73 days ago is still 73 days ago, a task due in three days is still due in three
days, and a suggestion applied from the demo never creates a task that is already overdue."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

DEMO_TODAY = date(2026, 11, 20)  # the day the situations of copilot/demo/README.md are written for
_DAY = re.compile(r"^(\d{4}-\d{2}-\d{2})(T.*)?$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def shift_dates(data: Any, *, today: date, demo_today: date = DEMO_TODAY) -> Any:
    """A copy of ``data`` with every ISO date (``2026-09-08``, ``2026-11-12T16:40:00+08:00``) moved by
    ``today - demo_today`` days and every month (``2026-10``) by the same number of calendar months."""
    days = (today - demo_today).days
    months = (today.year - demo_today.year) * 12 + today.month - demo_today.month
    return _shift(data, timedelta(days=days), months)


def _shift(value: Any, delta: timedelta, months: int) -> Any:
    if isinstance(value, dict):
        return {k: _shift(v, delta, months) for k, v in value.items()}
    if isinstance(value, list):
        return [_shift(v, delta, months) for v in value]
    if not isinstance(value, str):
        return value
    if m := _DAY.match(value):
        try:
            day = date.fromisoformat(m.group(1))
        except ValueError:
            return value
        return (day + delta).isoformat() + (m.group(2) or "")
    if m := _MONTH.match(value):
        index = int(m.group(1)) * 12 + int(m.group(2)) - 1 + months
        return f"{index // 12:04d}-{index % 12 + 1:02d}"
    return value


def today_utc() -> date:
    from datetime import UTC

    return datetime.now(UTC).date()
