"""Each user may choose the time zone web pages show them times in.

Null (every user until they choose) keeps times in UTC, as before. Only pages use it:
the database, the API and the CLI stay in UTC.

Revision ID: 0014_user_time_zone
Revises: 0013_rate_windows
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa
from alembic import op

revision = "0014_user_time_zone"
down_revision = "0013_rate_windows"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("time_zone", sa.String(64), nullable=True))


def downgrade() -> None:
    # A plain DROP COLUMN where SQLite has one (3.35+): its batch "copy and rebuild" drops
    # the users table, and the ON DELETE CASCADE of sessions and API tokens with it.
    if op.get_bind().dialect.name == "sqlite" and sqlite3.sqlite_version_info < (3, 35):
        with op.batch_alter_table("users") as batch:
            batch.drop_column("time_zone")
        return
    op.drop_column("users", "time_zone")
