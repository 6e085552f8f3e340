"""Opening the control database: engine, sessions and migrations."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from audiencesync.errors import NotSetUpError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (server, CLI) and one writer work at once; busy_timeout makes a
    # writer wait for another instead of failing with "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL mode and a busy timeout."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True)


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


class Database:
    """The control database of one home: an engine plus a session factory."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits when the block ends and rolls back on any error."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def current_revision(self) -> str | None:
        """The migration revision the database is at, or None when it is empty."""
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def head_revision(self) -> str | None:
        """The newest migration revision this version of audiencesync knows."""
        return ScriptDirectory.from_config(_alembic_config()).get_current_head()

    def is_initialised(self) -> bool:
        """Whether the database holds audiencesync's tables."""
        try:
            return self.current_revision() is not None
        except OperationalError:
            return False

    def migrate(self) -> None:
        """Bring the schema to the newest revision (a no-op when it is already there)."""
        if self.current_revision() == self.head_revision():
            return
        config = _alembic_config()
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        log.info("control database migrated to %s", self.head_revision())

    def ensure_ready(self) -> None:
        """Migrate when needed; fail with a clear message when never initialised."""
        if not self.is_initialised():
            raise NotSetUpError(
                "audiencesync is not set up in this home folder: run `audiencesync init` first "
                "(or set AUDIENCESYNC_HOME to the folder you initialised)."
            )
        self.migrate()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
