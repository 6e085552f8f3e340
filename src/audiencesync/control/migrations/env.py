"""Alembic environment: runs on the connection audiencesync hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from audiencesync.control.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    # Only reached when a developer runs the alembic CLI by hand.
    url = context.config.get_main_option("sqlalchemy.url") or "sqlite:///.audiencesync/control.db"
    with create_engine(url).begin() as own_connection:
        context.configure(connection=own_connection, target_metadata=Base.metadata)
        with context.begin_transaction():
            context.run_migrations()
else:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # A batch step rebuilds a table (CREATE new, copy, DROP old): with foreign keys on,
        # the DROP deletes the rows of every table that cascades from it (a downgrade
        # rebuilding ``exports`` took every run with it). Off for the migration, on after.
        # SQLite ignores the pragma inside a transaction: before any write it is not in one.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        context.configure(
            connection=connection, target_metadata=Base.metadata, render_as_batch=sqlite
        )
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
