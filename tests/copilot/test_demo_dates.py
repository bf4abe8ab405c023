"""The demo's dates follow today (`copilot run`): its "today" (2026-11-20) becomes the real today, so the
situations of copilot/demo/README.md hold and a demo suggestion never proposes an overdue task."""

import json
from datetime import date, timedelta

from copilot.demo.dates import DEMO_TODAY, shift_dates
from copilot.demo.seed import DEMO_DIR
from copilot.features.crm_import import CRMImporter


def test_dates_months_and_timestamps_move_by_the_same_distance_as_today():
    data = {"due": "2026-11-23", "month": "2026-10", "recorded_at": "2026-11-12T16:40:00+08:00",
            "rows": [{"date": "2025-12-31"}], "name": "2026-11 华星", "amount": 12}  # fmt: skip
    moved = shift_dates(data, today=date(2027, 2, 3))  # 75 days and 3 calendar months later
    assert moved == {"due": "2027-02-06", "month": "2027-01", "recorded_at": "2027-01-26T16:40:00+08:00",
                     "rows": [{"date": "2026-03-16"}], "name": "2026-11 华星", "amount": 12}  # fmt: skip
    assert shift_dates(data, today=DEMO_TODAY) == data


def test_demo_suggestions_for_today_propose_no_task_already_overdue(services):
    services.provide("kb", None)  # the CRM situations alone
    today = DEMO_TODAY + timedelta(days=17)
    data = shift_dates(json.loads((DEMO_DIR / "crm.json").read_text(encoding="utf-8")), today=today)
    CRMImporter(services.engine, services.local_crm, services.users).import_data(data)

    dues, kinds = [], set()
    for customer in ("c_jincheng", "c_xianfeng", "c_huaxing", "c_shunda", "c_renkang", "c_baijia"):
        for s in services.suggester.plan_for_owner(customer, today).suggestions:
            kinds.add(s.action_type)
            change = s.proposed_change
            if change is not None and "due" in change.fields:
                dues.append(change.fields["due"])
    assert dues and min(dues) >= today.isoformat()
    assert {"care_task", "follow_up_quote"} <= kinds  # the demo's situations still fire on the moved dates
