"""Privacy: suppression lists, erasures, an export's consent field, erasure runs.

Revision ID: 0011_privacy
Revises: 0010_active_run
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from audiencesync.control.models import UTCDateTime

revision = "0011_privacy"
down_revision = "0010_active_run"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suppression_lists",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("all_exports", sa.Boolean, nullable=False),
        sa.Column("system", sa.Boolean, nullable=False),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("hashed_input", sa.Boolean, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("rejected", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "suppression_list_exports",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "list_id",
            sa.Integer,
            sa.ForeignKey("suppression_lists.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "export_id",
            sa.Integer,
            sa.ForeignKey("exports.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.UniqueConstraint("list_id", "export_id"),
    )
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("requested_by", sa.String(100), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("identifiers", sa.JSON, nullable=False),
        sa.Column("exports", sa.JSON, nullable=False),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
    )
    with op.batch_alter_table("exports") as batch:
        batch.add_column(sa.Column("consent_field", sa.String(300), nullable=True))
        batch.add_column(sa.Column("consent_values", sa.JSON, nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("erasure_id", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("erasure_id")
    with op.batch_alter_table("exports") as batch:
        batch.drop_column("consent_values")
        batch.drop_column("consent_field")
    op.drop_table("erasures")
    op.drop_table("suppression_list_exports")
    op.drop_table("suppression_lists")
