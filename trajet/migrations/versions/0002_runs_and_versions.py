"""Training runs (every gate decision, passing or not) and the model versions pushed to the registry.

Revision ID: 0002_runs_and_versions
Revises: 0001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_runs_and_versions"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "training_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), sa.ForeignKey("dataset_snapshots.id"), nullable=True),
        sa.Column("snapshot_hash", sa.String(64), nullable=True),
        sa.Column("base_model", sa.String(200), nullable=True),
        sa.Column("training_config", sa.JSON(), nullable=False),
        sa.Column("candidate_metrics", sa.JSON(), nullable=False),
        sa.Column("champion_version", sa.String(128), nullable=True),
        sa.Column("champion_metrics", sa.JSON(), nullable=True),
        sa.Column("gate_passed", sa.Boolean(), nullable=True),
        sa.Column("gate", sa.JSON(), nullable=False),
        sa.Column("candidate_macro_f1", sa.Float(), nullable=True),
        sa.Column("version", sa.String(128), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version", sa.String(128), nullable=False, unique=True),
        sa.Column("training_run_id", sa.Integer(), sa.ForeignKey("training_runs.id"), nullable=True),
        sa.Column("registry_uri", sa.Text(), nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
        sa.Column("snapshot_hash", sa.String(64), nullable=True),
        sa.Column("macro_f1", sa.Float(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("gate", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("model_versions")
    op.drop_table("training_runs")
