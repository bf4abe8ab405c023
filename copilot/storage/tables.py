"""The copilot's own tables: people, credentials, memos, suggestions, adoption, audit, outbox."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

MAX_MSG_ID = 191

metadata = MetaData()

teams = Table(
    "teams",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),  # rep | manager | admin
    Column("team_id", String(64), index=True),
    Column("wecom_userid", String(128), index=True),
    Column("dingtalk_userid", String(128), index=True),
    Column("custom", JSON, nullable=False, default=dict),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),  # public prefix of the token
    Column("user_id", String(64), nullable=False, index=True),
    Column("token_hash", String(128), nullable=False),
    Column("label", String(100), nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

memos = Table(
    "memos",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("customer_id", String(64), index=True),
    Column("user_id", String(64), index=True),
    Column("recorded_at", String(40)),
    Column("status", String(16), nullable=False, default="done"),  # queued | processing | done | failed
    Column("transcript", Text, nullable=False, default=""),
    Column("segments", JSON, nullable=False, default=list),
    Column("visit_record", JSON),
    Column("audio_path", String(500)),
    Column("error", JSON),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

suggestions = Table(
    "suggestions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("customer_id", String(64), index=True),
    Column("user_id", String(64), index=True),
    Column("action_type", String(32), nullable=False),
    Column("title", String(300), nullable=False),
    Column("rationale", Text, nullable=False, default=""),
    Column("confidence", Float, nullable=False, default=0.0),
    Column("citations", JSON, nullable=False, default=list),
    Column("proposed_change", JSON),
    Column("status", String(16), nullable=False, default="proposed"),
    # Same customer + action type + evidence = same suggestion: logged once (DESIGN §7).
    Column("fingerprint", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("user_id", "fingerprint", name="uq_suggestion_fingerprint"),
)

suggestion_events = Table(
    "suggestion_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("suggestion_id", String(64), nullable=False, index=True),
    Column("user_id", String(64), index=True),
    Column("event", String(16), nullable=False),  # proposed shown accepted edited dismissed applied
    Column("channel", String(16)),
    Column("detail", JSON),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

chat_messages = Table(
    "chat_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", String(64), nullable=False, index=True),
    Column("customer_id", String(64)),
    Column("role", String(16), nullable=False),  # user | assistant
    Column("content", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# One row per conversation (DESIGN §5.7): ``state`` is the engine's JSON (focus customer, pending change,
# numbered suggestions, pending clarification, last turns). A WeCom/DingTalk chat has a ``channel_key``.
conversations = Table(
    "conversations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(64), nullable=False, index=True),
    Column("channel_key", String(200)),
    Column("state", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("channel_key", name="uq_conversations_channel_key"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("user_id", String(64)),
    Column("action", String(64), nullable=False),
    Column("target", String(200)),
    Column("before", JSON),
    Column("after", JSON),
    Column("evidence", JSON),
    Column("idempotency_key", String(200), index=True),  # links the entry to its outbox row
    Column("detail", JSON),  # e.g. the rep's edit: {"suggestion_id", "original", "edited"}
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("op", String(32), nullable=False),
    Column("payload", JSON, nullable=False),
    Column(
        "status", String(16), nullable=False, default="pending"
    ),  # pending | delivered | failed | cancelled
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("result", JSON),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True)),
    Column("user_id", String(64), index=True),  # who confirmed the write (told if it fails)
    Column("locked_until", DateTime(timezone=True)),  # a deliverer's lease; expired leases are reclaimed
)

# Inbound channel messages, for dedup of platform retries: ids and statuses only, never content.
channel_messages = Table(
    "channel_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel", String(16), nullable=False),
    Column("msg_id", String(MAX_MSG_ID), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("user_id", String(64)),
    Column("status", String(16), nullable=False),  # received | replied | unbound | ignored | failed
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("done_at", DateTime(timezone=True)),
    UniqueConstraint("channel", "msg_id", name="uq_channel_messages_channel_msg_id"),
)

# The suggestions last shown to a platform user, in order: 「确认 N」 refers to the N-th of them.
channel_shown = Table(
    "channel_shown",
    metadata,
    Column("channel", String(16), primary_key=True),
    Column("sender_id", String(128), primary_key=True),
    Column("suggestion_ids", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# A WeCom AI-bot stream reply: WeCom polls it by stream id until ``finished``.
channel_streams = Table(
    "channel_streams",
    metadata,
    Column("stream_id", String(64), primary_key=True),
    Column("channel", String(16), nullable=False),
    Column("msg_id", String(128), nullable=False),
    Column("content", Text, nullable=False),
    Column("finished", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


# -- adoption: talk-track ratings (fed to retrieval) and managers' annotations --

# A rep's rating of one cited passage (a KB chunk): 有效 / 部分有效 / 无效 with a reason.
# One current rating per user and chunk; rating again replaces it.
talk_track_ratings = Table(
    "talk_track_ratings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("chunk_id", String(191), nullable=False, index=True),
    Column("source", String(500), nullable=False, index=True),  # KB document path as ingested
    Column("user_id", String(64), nullable=False, index=True),
    Column("suggestion_id", String(64), index=True),
    Column("rating", String(16), nullable=False),  # effective | partial | ineffective
    Column("reason", Text, nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("user_id", "chunk_id", name="uq_talk_track_ratings_user_chunk"),
)

# A manager's review of a suggestion (the 决策沙盒): correct / wrong / harmful with a note.
# One current verdict per manager and suggestion; annotating again replaces it.
suggestion_annotations = Table(
    "suggestion_annotations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("suggestion_id", String(64), nullable=False, index=True),
    Column("user_id", String(64), nullable=False, index=True),
    Column("verdict", String(16), nullable=False),  # correct | wrong | harmful
    Column("note", Text, nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("user_id", "suggestion_id", name="uq_suggestion_annotations_user_suggestion"),
)


# -- write-back: CRM outcomes read back from the CRM, and notifications for reps --

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
