"""Write-back's own tables: CRM outcomes read back from the CRM, and notifications for reps.

Declared on the copilot's one ``metadata`` so Alembic (revision 0006) and ``create_all`` see them.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, String, Table, Text, UniqueConstraint

from copilot.storage.tables import metadata

# Opportunity stage moves (and won/lost) as the configured CRM reports them, whichever CRM that is.
# ``seq`` numbers the moves of one opportunity; (crm, opportunity_id, seq) is unique, so two
# pollers racing over the same move record it once.
crm_outcomes = Table(
    "crm_outcomes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("crm", String(16), nullable=False),  # local | salesforce | hubspot
    Column("customer_id", String(64), nullable=False, index=True),
    Column("opportunity_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("stage", String(32), nullable=False),
    Column("previous_stage", String(32)),
    Column("outcome", String(8)),  # won | lost | None (still open)
    Column("entered", String(32)),  # when the CRM says the stage was entered (YYYY-MM-DD), if it says
    Column("seen_at", DateTime(timezone=True), nullable=False),  # when we first saw it
    UniqueConstraint("crm", "opportunity_id", "seq", name="uq_crm_outcomes_crm_opportunity_seq"),
)

# Messages for one user (Chinese), e.g. a confirmed CRM write that failed for good.
notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", String(64), nullable=False, index=True),
    Column("kind", String(32), nullable=False),  # crm_write_failed
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("ref", String(200)),  # e.g. the outbox row's idempotency key
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("read_at", DateTime(timezone=True)),
)
