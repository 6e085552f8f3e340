"""Unified customer profiles: unification definitions and their source datasets.

Revision ID: 0012_unification
Revises: 0011_privacy
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from audiencesync.control.models import UTCDateTime

revision = "0012_unification"
down_revision = "0011_privacy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unifications",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column(
            "dataset_id", sa.Integer,
            sa.ForeignKey("datasets.id", ondelete="SET NULL"), nullable=True,
        ),
        sa.Column("rules", sa.JSON, nullable=False),
        sa.Column("run_path", sa.Text, nullable=True),
        sa.Column("next_id", sa.BigInteger, nullable=False, server_default="1"),
        sa.Column("version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("stats", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=False),
        sa.Column("refreshed_at", UTCDateTime(), nullable=True),
    )  # fmt: skip
    op.create_table(
        "unification_sources",
        sa.Column(
            "unification_id", sa.Integer,
            sa.ForeignKey("unifications.id", ondelete="CASCADE"), primary_key=True,
        ),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column(
            "dataset_id", sa.Integer,
            sa.ForeignKey("datasets.id", ondelete="RESTRICT"), nullable=False,
        ),
        sa.Column("key_column", sa.String(300), nullable=False),
    )  # fmt: skip
    op.create_index("ix_unification_sources_dataset_id", "unification_sources", ["dataset_id"])


def downgrade() -> None:
    op.drop_index("ix_unification_sources_dataset_id", table_name="unification_sources")
    op.drop_table("unification_sources")
    op.drop_table("unifications")
