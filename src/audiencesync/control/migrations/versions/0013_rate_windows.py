"""A shared rate budget per access token: the latest request slots of each token.

Workers on any number of machines that share a PostgreSQL control database take their
request slots from this table (``control.ratebudget``), so together they stay under
Snapchat's per-token limit. Tokens are never stored: ``key`` is a keyed hash of one.

Revision ID: 0013_rate_windows
Revises: 0012_unification
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_rate_windows"
down_revision = "0012_unification"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_windows",
        sa.Column("key", sa.String(64), primary_key=True),
        # The latest slots (seconds on the database's clock), oldest first, as JSON.
        sa.Column("slots", sa.Text, nullable=False),
        sa.Column("updated", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_windows")
