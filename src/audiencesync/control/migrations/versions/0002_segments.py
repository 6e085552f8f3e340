"""Segments: rule definitions, references between segments, evaluations (size over time).

Revision ID: 0002_segments
Revises: 0001_foundation
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from audiencesync.control.models import UTCDateTime

revision = "0002_segments"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column(
            "dataset_id",
            sa.Integer,
            sa.ForeignKey("datasets.id", ondelete="RESTRICT"),
            nullable=False,
            index=True,
        ),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("rules", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=False),
    )
    op.create_table(
        "segment_references",
        sa.Column(
            "segment_id",
            sa.Integer,
            sa.ForeignKey("segments.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "referenced_id",
            sa.Integer,
            sa.ForeignKey("segments.id", ondelete="RESTRICT"),
            primary_key=True,
            index=True,
        ),
    )
    op.create_table(
        "segment_evaluations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "segment_id",
            sa.Integer,
            sa.ForeignKey("segments.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("actor", sa.String(100), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("segment_evaluations")
    op.drop_table("segment_references")
    op.drop_table("segments")
