"""Alerts: channels (URL encrypted), per-export events and channels, deliveries.

Revision ID: 0008_alerts
Revises: 0007_run_guard
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from audiencesync.control.models import UTCDateTime

revision = "0008_alerts"
down_revision = "0007_run_guard"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_channels",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("scheme", sa.String(40), nullable=False),
        sa.Column("host", sa.String(300), nullable=False),
        sa.Column("url_ciphertext", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "export_alert_settings",
        sa.Column(
            "export_id",
            sa.Integer,
            sa.ForeignKey("exports.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("events", sa.JSON, nullable=False),
        sa.Column("reject_share_threshold", sa.Float, nullable=False),
    )
    op.create_table(
        "export_alert_channels",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "export_id",
            sa.Integer,
            sa.ForeignKey("exports.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column(
            "channel_id",
            sa.Integer,
            sa.ForeignKey("alert_channels.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.UniqueConstraint("export_id", "channel_id"),
    )
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "channel_id",
            sa.Integer,
            sa.ForeignKey("alert_channels.id", ondelete="SET NULL"),
            nullable=True,
            index=True,
        ),
        sa.Column("channel_name", sa.String(100), nullable=False),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("export_name", sa.String(100), nullable=False),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("dedupe_key", sa.String(200), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False, index=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("channel_id", "dedupe_key"),
    )


def downgrade() -> None:
    op.drop_table("alert_deliveries")
    op.drop_table("export_alert_channels")
    op.drop_table("export_alert_settings")
    op.drop_table("alert_channels")
