"""An event log written into the real database of the small test CRM (teams t_a: rep_a, rep_a2,
mgr_a; t_b: rep_b), with timestamps relative to the real clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from copilot.storage import tables as t

# (id, rep, customer, action_type, kb doc, channel, [(event, hours after shown, detail)], days ago shown)
LOG = [
    (
        "sg_1",
        "rep_a",
        "c_a1",
        "schedule_visit",
        "talk/a.md",
        "web",
        [("accepted", 2, None), ("applied", 3, None)],
        20,
    ),
    (
        "sg_2",
        "rep_a",
        "c_a1",
        "send_material",
        "talk/a.md",
        "wecom",
        [("edited", 5, {"edited_fields": ["title"]})],
        19,
    ),
    (
        "sg_3",
        "rep_a",
        "c_a1",
        "care_task",
        "talk/b.md",
        "web",
        [("dismissed", 1, {"comment": "时机不对"})],
        18,
    ),
    ("sg_4", "rep_a2", "c_a2", "schedule_visit", "talk/b.md", "web", [], 10),  # ignored
    ("sg_5", "rep_a2", "c_a2", "follow_up_quote", None, "web", [], 2),  # pending
    ("sg_6", "rep_b", "c_b1", "schedule_visit", "talk/a.md", "dingtalk", [("accepted", 1, None)], 5),
    ("sg_7", "rep_b", "c_b1", "other", None, "web", [("dismissed", 1, None)], 4),
]
# Hand-computed: team t_a → shown 5, accepted 1, edited 1, dismissed 1, ignored 1, applied 1, rate 0.4
#                everyone → shown 7, accepted 2, edited 1, dismissed 2, ignored 1, applied 1, rate 3/7


def write_log(engine, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    rows, events = [], []
    for sid, rep, customer, action, doc, channel, actions, days in LOG:
        shown = now - timedelta(days=days)
        citations = [
            {
                "kind": "crm",
                "ref": f"{customer}.profile",
                "locator": "",
                "source": f"{customer}.profile",
                "quote": "q",
                "label": "依据CRM",
            }
        ]
        if doc:
            citations.append(
                {
                    "kind": "kb",
                    "ref": f"{doc}#0",
                    "locator": "¶1",
                    "source": doc,
                    "quote": "话术原文",
                    "label": f"依据《{doc}》",
                }
            )
        rows.append(
            {
                "id": sid,
                "customer_id": customer,
                "user_id": rep,
                "action_type": action,
                "title": f"标题{sid}",
                "rationale": "",
                "confidence": 0.5,
                "citations": citations,
                "proposed_change": None,
                "status": "proposed",
                "fingerprint": sid,
                "created_at": shown,
                "updated_at": shown,
            }
        )
        events.append(
            {
                "suggestion_id": sid,
                "user_id": rep,
                "event": "proposed",
                "channel": None,
                "detail": None,
                "created_at": shown - timedelta(minutes=1),
            }
        )
        events.append(
            {
                "suggestion_id": sid,
                "user_id": rep,
                "event": "shown",
                "channel": channel,
                "detail": None,
                "created_at": shown,
            }
        )
        for event, hours, detail in actions:
            events.append(
                {
                    "suggestion_id": sid,
                    "user_id": rep,
                    "event": event,
                    "channel": "web",
                    "detail": detail,
                    "created_at": shown + timedelta(hours=hours),
                }
            )
    with engine.begin() as conn:
        conn.execute(insert(t.suggestions), rows)
        conn.execute(insert(t.suggestion_events), events)


@pytest.fixture
def log_services(crm_services):
    write_log(crm_services.engine)
    return crm_services
