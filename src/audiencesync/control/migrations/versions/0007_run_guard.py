"""The removal guard: each export's maximum removal share, and approval runs.

A mirror run that would remove more than ``exports.max_removal_share`` of the identifiers
held in the audience (default 0.2) ends ``needs_approval``; the run that sends its held
removals once approved points at it with ``runs.approves_run_id``. Existing exports get
the default share.

Revision ID: 0007_run_guard
Revises: 0006_audience_readings
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_run_guard"
down_revision = "0006_audience_readings"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "exports",
        sa.Column("max_removal_share", sa.Float(), nullable=False, server_default="0.2"),
    )
    op.add_column("runs", sa.Column("approves_run_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("approves_run_id")
    with op.batch_alter_table("exports") as batch:
        batch.drop_column("max_removal_share")
