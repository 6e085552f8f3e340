"""At most one queued or running run per export, enforced by the database.

A partial unique index on ``runs(export_id)`` over the active statuses (both SQLite and
PostgreSQL support partial indexes), so two requests racing to queue a run of one export
cannot both succeed. Runs that already broke the rule (extra queued runs queued by the
race this closes) are cancelled first, keeping the running run or else the oldest.

Revision ID: 0010_active_run
Revises: 0009_sources
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_active_run"
down_revision = "0009_sources"
branch_labels = None
depends_on = None

_ACTIVE = sa.text("status IN ('queued', 'running')")
_DUPLICATE = [
    "cancelled by the upgrade that allows one active run per export: another run of "
    "this export was already queued or running."
]


def upgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE runs SET status = 'cancelled', finished_at = CURRENT_TIMESTAMP, "
            "errors = :errors "
            "WHERE status = 'queued' AND EXISTS ("
            "SELECT 1 FROM runs AS other WHERE other.export_id = runs.export_id "
            "AND other.status IN ('queued', 'running') "
            "AND (other.status = 'running' OR other.id < runs.id))"
        ).bindparams(sa.bindparam("errors", _DUPLICATE, type_=sa.JSON))
    )
    op.create_index(
        "uq_runs_one_active", "runs", ["export_id"], unique=True,
        sqlite_where=_ACTIVE, postgresql_where=_ACTIVE,
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("uq_runs_one_active", table_name="runs")
