"""Initial store: batches, phrases, quarantined rows, place names, dataset snapshots and their members.

Revision ID: 0001_initial
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("stored", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("quarantined", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
    )
    op.create_index("ix_batches_sha256", "batches", ["sha256"])
    op.create_table(
        "phrases",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("norm_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("entities", sa.JSON(), nullable=False),
        sa.Column("split", sa.String(10), nullable=False),
        sa.Column("is_validation", sa.Boolean(), nullable=False),
        sa.Column("group", sa.String(100), nullable=True),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("n_depart", sa.Integer(), nullable=False),
        sa.Column("n_arrivee", sa.Integer(), nullable=False),
        sa.Column("n_via", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), sa.ForeignKey("batches.id"), nullable=False),
    )
    op.create_index("ix_phrases_batch_id", "phrases", ["batch_id"])
    op.create_table(
        "quarantined_rows",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("batch_id", sa.Integer(), sa.ForeignKey("batches.id"), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
    )
    op.create_index("ix_quarantined_rows_batch_id", "quarantined_rows", ["batch_id"])
    op.create_table(
        "place_names",
        sa.Column("name", sa.String(512), primary_key=True),
    )
    op.create_table(
        "dataset_snapshots",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("content_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
    )
    op.create_table(
        "snapshot_phrases",
        sa.Column("snapshot_id", sa.Integer(), sa.ForeignKey("dataset_snapshots.id"), primary_key=True),
        sa.Column("phrase_id", sa.Integer(), sa.ForeignKey("phrases.id"), primary_key=True),
    )
    op.create_index("ix_snapshot_phrases_phrase_id", "snapshot_phrases", ["phrase_id"])


def downgrade() -> None:
    op.drop_index("ix_snapshot_phrases_phrase_id", table_name="snapshot_phrases")
    op.drop_table("snapshot_phrases")
    op.drop_table("dataset_snapshots")
    op.drop_table("place_names")
    op.drop_index("ix_quarantined_rows_batch_id", table_name="quarantined_rows")
    op.drop_table("quarantined_rows")
    op.drop_index("ix_phrases_batch_id", table_name="phrases")
    op.drop_table("phrases")
    op.drop_index("ix_batches_sha256", table_name="batches")
    op.drop_table("batches")
