"""adoption: talk_track_ratings (rep ratings of cited passages) and suggestion_annotations (manager review)

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "talk_track_ratings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("chunk_id", sa.String(length=191), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("suggestion_id", sa.String(length=64), nullable=True),
        sa.Column("rating", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "chunk_id", name="uq_talk_track_ratings_user_chunk"),
    )
    op.create_index("ix_talk_track_ratings_chunk_id", "talk_track_ratings", ["chunk_id"])
    op.create_index("ix_talk_track_ratings_source", "talk_track_ratings", ["source"])
    op.create_index("ix_talk_track_ratings_user_id", "talk_track_ratings", ["user_id"])
    op.create_index("ix_talk_track_ratings_suggestion_id", "talk_track_ratings", ["suggestion_id"])
    op.create_table(
        "suggestion_annotations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("suggestion_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "suggestion_id", name="uq_suggestion_annotations_user_suggestion"),
    )
    op.create_index("ix_suggestion_annotations_suggestion_id", "suggestion_annotations", ["suggestion_id"])
    op.create_index("ix_suggestion_annotations_user_id", "suggestion_annotations", ["user_id"])


def downgrade() -> None:
    op.drop_table("suggestion_annotations")
    op.drop_table("talk_track_ratings")
