"""Connections, exports, runs, export leases and the system refresh schedule.

Revision ID: 0003_connections_exports
Revises: 0002_segments
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from audiencesync.control.models import UTCDateTime

revision = "0003_connections_exports"
down_revision = "0002_segments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connections",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("type", sa.String(30), nullable=False),
        sa.Column("shared_with_contributors", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("consent_by", sa.String(100), nullable=False),
        sa.Column("consent_at", UTCDateTime(), nullable=False),
        sa.Column("consent_version", sa.String(64), nullable=False),
        sa.Column("export_user", sa.String(100), nullable=False),
        sa.Column("platform_user_id", sa.String(200), nullable=False),
        sa.Column("platform_user_name", sa.String(300), nullable=False),
        sa.Column("organization_ids", sa.JSON, nullable=False),
        sa.Column("ad_accounts", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("authenticated_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_table(
        "exports",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column(
            "connection_id",
            sa.Integer,
            sa.ForeignKey("connections.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("audience_id", sa.String(64), nullable=False),
        sa.Column("audience_name", sa.String(400), nullable=False),
        sa.Column("ad_account_id", sa.String(64), nullable=False),
        sa.Column("email_field", sa.String(300), nullable=True),
        sa.Column("phone_field", sa.String(300), nullable=True),
        sa.Column("maid_field", sa.String(300), nullable=True),
        sa.Column("default_country", sa.String(2), nullable=True),
        sa.Column("mode", sa.String(20), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("schedule", sa.String(100), nullable=False),
        sa.Column("timezone", sa.String(60), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("validation", sa.JSON, nullable=False),
        sa.Column("last_scheduled_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "export_segments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "export_id",
            sa.Integer,
            sa.ForeignKey("exports.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("segment_id", sa.Integer, sa.ForeignKey("segments.id"), nullable=False),
        sa.UniqueConstraint("export_id", "segment_id"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "export_id",
            sa.Integer,
            sa.ForeignKey("exports.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("requested_by", sa.String(100), nullable=False),
        sa.Column("status", sa.String(30), nullable=False, index=True),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("full", sa.Boolean, nullable=False),
        sa.Column("queued_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("worker", sa.String(200), nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.Column("reject_samples", sa.JSON, nullable=False),
        sa.Column("progress", sa.JSON, nullable=False),
        sa.Column("audience", sa.JSON, nullable=False),
        sa.Column("errors", sa.JSON, nullable=False),
    )
    op.create_table(
        "export_leases",
        sa.Column(
            "export_id",
            sa.Integer,
            sa.ForeignKey("exports.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("worker", sa.String(200), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "system_schedule",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("cron", sa.String(100), nullable=False),
        sa.Column("timezone", sa.String(60), nullable=False),
        sa.Column("last_fired_at", UTCDateTime(), nullable=True),
        sa.Column("updated_by", sa.String(100), nullable=True),
    )


def downgrade() -> None:
    for table in (
        "system_schedule",
        "export_leases",
        "runs",
        "export_segments",
        "exports",
        "connections",
    ):
        op.drop_table(table)
