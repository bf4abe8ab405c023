"""Adoption's own tables: talk-track ratings (fed to retrieval) and managers' annotations.

Declared on the copilot's one ``metadata`` so Alembic (revision 0005) and ``create_all`` see them.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, String, Table, Text, UniqueConstraint

from copilot.storage.tables import metadata

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
