"""Readings of each export's audience over time, the per-export reading schedule and drift,
and the replace flag of a run.

Revision ID: 0006_audience_readings
Revises: 0005_oauth_channel
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from audiencesync.control.models import UTCDateTime

revision = "0006_audience_readings"
down_revision = "0005_oauth_channel"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "runs", sa.Column("replace", sa.Boolean, nullable=False, server_default=sa.false())
    )
    op.create_table(
        "audience_readings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "export_id",
            sa.Integer,
            sa.ForeignKey("exports.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("audience_id", sa.String(64), nullable=False),
        sa.Column("read_at", UTCDateTime(), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("approximate_number_users", sa.Integer, nullable=True),
        sa.Column("upload_status", sa.String(30), nullable=True),
        sa.Column("targetable_status", sa.String(30), nullable=True),
        sa.Column("identifiers_held", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("drifted", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "export_audience_state",
        sa.Column(
            "export_id",
            sa.Integer,
            sa.ForeignKey("exports.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("identifiers_held", sa.Integer, nullable=True),
        sa.Column("held_at", UTCDateTime(), nullable=True),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("next_reading_at", UTCDateTime(), nullable=True, index=True),
        sa.Column("follow_ups", sa.Integer, nullable=False, server_default="0"),
        sa.Column("drift", sa.JSON, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("export_audience_state")
    op.drop_table("audience_readings")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("replace")
