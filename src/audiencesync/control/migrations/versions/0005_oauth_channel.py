"""Record where a Snapchat sign-in was started (API or browser session).

A sign-in started on the web page may then only be finished by that browser's callback,
and one started through the API only through the API. Sign-ins pending during the
upgrade count as API ones (they expire within 15 minutes anyway).

Revision ID: 0005_oauth_channel
Revises: 0004_web_access
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_oauth_channel"
down_revision = "0004_web_access"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "oauth_pending",
        sa.Column("channel", sa.String(16), nullable=False, server_default="api"),
    )


def downgrade() -> None:
    with op.batch_alter_table("oauth_pending") as batch:
        batch.drop_column("channel")
