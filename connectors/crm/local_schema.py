"""Tables of the embedded local CRM (SQLite by default, PostgreSQL at scale)."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, Integer, MetaData, String, Table, Text

metadata = MetaData()

customers = Table(
    "crm_customers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("tier", String(8)),
    Column("industry", String(100)),
    Column("region", String(100)),
    Column("owner_user_id", String(64), index=True),
    Column("notes", Text, nullable=False, default=""),
    Column("custom", JSON, nullable=False, default=dict),
)

contacts = Table(
    "crm_contacts",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", String(64), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("name", String(100), nullable=False),
    Column("role", String(100), nullable=False, default=""),
    Column("is_decision_maker", Boolean, nullable=False, default=False),
    Column("custom", JSON, nullable=False, default=dict),
)

opportunities = Table(
    "crm_opportunities",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("stage", String(32), nullable=False),
    Column("amount", Float),
    Column("currency", String(8), nullable=False, default="CNY"),
    Column("created", String(32)),
    Column("stage_entered", String(32)),
    Column("expected_close", String(32)),
    Column("competitors", JSON, nullable=False, default=list),
    Column("stage_history", JSON, nullable=False, default=list),
    Column("custom", JSON, nullable=False, default=dict),
)

visits = Table(
    "crm_visits",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", String(64), nullable=False, index=True),
    Column("date", String(32), nullable=False),
    Column("type", String(50), nullable=False, default=""),
    Column("user_id", String(64)),
    Column("contacts", JSON, nullable=False, default=list),
    Column("notes", Text, nullable=False, default=""),
    Column("memo_id", String(64)),
    Column("custom", JSON, nullable=False, default=dict),
)

purchases = Table(
    "crm_purchases",
    metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("month", String(7), primary_key=True),
    Column("amount", Float, nullable=False),
)

tasks = Table(
    "crm_tasks",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False, index=True),
    Column("title", String(300), nullable=False),
    Column("created", String(32)),
    Column("due", String(32)),
    Column("status", String(16), nullable=False, default="open"),
    Column("completed", String(32)),
    Column("custom", JSON, nullable=False, default=dict),
)

notes = Table(
    "crm_notes",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False, index=True),
    Column("body", Text, nullable=False),
    Column("user_id", String(64)),
    Column("created", String(32)),
    Column("custom", JSON, nullable=False, default=dict),
)

# Idempotency keys of the writes the local CRM has applied: key → the record it produced.
write_keys = Table(
    "crm_write_keys",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("record_id", String(64), nullable=False),
    Column("created", String(32), nullable=False),
)
