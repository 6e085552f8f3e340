"""A linked dataset's source is a foreign key: a source cannot be removed while a
dataset links through it, even when the removal and the link happen at the same moment.

The service checked, then acted, in two transactions: a link and a removal racing each
other both succeeded and left a dataset whose source was gone. ``datasets.source_id``
now references ``sources.id`` (ON DELETE RESTRICT), and on SQLite ``sources`` uses
AUTOINCREMENT so a removed source's id is never given to another. Datasets that already
point at a removed source keep no source id (they say "link it again", as before).

Revision ID: 0015_dataset_source_key
Revises: 0014_user_time_zone
Create Date: 2026-12-09
"""

from __future__ import annotations

from alembic import op

revision = "0015_dataset_source_key"
down_revision = "0014_user_time_zone"
branch_labels = None
depends_on = None

FOREIGN_KEY = "fk_datasets_source_id"


def upgrade() -> None:
    op.execute(
        "UPDATE datasets SET source_id = NULL WHERE source_id IS NOT NULL "
        "AND source_id NOT IN (SELECT id FROM sources)"
    )
    if op.get_bind().dialect.name == "sqlite":
        # SQLite changes neither without rebuilding the table (env.py turns foreign keys
        # off meanwhile, so dropping the old tables cascades nowhere).
        with op.batch_alter_table(
            "sources", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass
    with op.batch_alter_table("datasets") as batch:
        batch.create_foreign_key(FOREIGN_KEY, "sources", ["source_id"], ["id"], ondelete="RESTRICT")


def downgrade() -> None:
    # sources keeps AUTOINCREMENT on SQLite: harmless to 0014, and no rebuild.
    with op.batch_alter_table("datasets") as batch:
        batch.drop_constraint(FOREIGN_KEY, type_="foreignkey")
