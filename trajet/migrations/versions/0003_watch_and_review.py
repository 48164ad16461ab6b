"""The champion watch (one row per accepted batch x champion version), the annotation review queue, and the
history of every annotation a review changed.

Revision ID: 0003_watch_and_review
Revises: 0002_runs_and_versions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_watch_and_review"
down_revision = "0002_runs_and_versions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_watch",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("batch_id", sa.Integer(), sa.ForeignKey("batches.id"), nullable=False),
        sa.Column("champion_version", sa.String(128), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("micro_f1", sa.Float(), nullable=True),
        sa.Column("exact_match", sa.Float(), nullable=True),
        sa.Column("no_trip_rows", sa.Integer(), nullable=False),
        sa.Column("no_trip_clean", sa.Float(), nullable=True),
        sa.Column("per_entity", sa.JSON(), nullable=False),
        sa.Column("behaviour", sa.JSON(), nullable=False),
        sa.Column("alert", sa.Boolean(), nullable=False),
        sa.Column("alert_reason", sa.Text(), nullable=False),
        sa.UniqueConstraint("batch_id", "champion_version", name="uq_batch_watch_batch_champion"),
    )
    op.create_index("ix_batch_watch_batch_id", "batch_watch", ["batch_id"])
    op.create_table(
        "review_items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("batch_id", sa.Integer(), sa.ForeignKey("batches.id"), nullable=False),
        sa.Column("phrase_id", sa.Integer(), sa.ForeignKey("phrases.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("champion_version", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("annotation", sa.JSON(), nullable=False),
        sa.Column("model_entities", sa.JSON(), nullable=False),
        sa.Column("held", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=False),
    )
    op.create_index("ix_review_items_phrase_id", "review_items", ["phrase_id"])
    op.create_index("ix_review_items_status", "review_items", ["status"])
    op.create_table(
        "phrase_revisions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("phrase_id", sa.Integer(), sa.ForeignKey("phrases.id"), nullable=False),
        sa.Column("review_item_id", sa.Integer(), sa.ForeignKey("review_items.id"), nullable=True),
        sa.Column("revised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("old_entities", sa.JSON(), nullable=False),
        sa.Column("new_entities", sa.JSON(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
    )
    op.create_index("ix_phrase_revisions_phrase_id", "phrase_revisions", ["phrase_id"])


def downgrade() -> None:
    op.drop_table("phrase_revisions")
    op.drop_table("review_items")
    op.drop_table("batch_watch")
