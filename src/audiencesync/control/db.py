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
from sqlalchemy.engine import Engine, ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from audiencesync.errors import ConflictError, DatabaseUnavailableError, Fix, NotSetUpError

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


def _sqlite_foreign_keys_on(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    # A migration turns foreign keys off (migrations/env.py) and its "on again" runs
    # inside its transaction, where SQLite ignores it: without this, the pooled
    # connection went on serving requests with no foreign key checked.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


#: SQLite result codes that mean the file cannot be reached or written (not a bad query).
_SQLITE_UNAVAILABLE = ("SQLITE_CANTOPEN", "SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY",
                       "SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_PERM", "SQLITE_NOTADB")  # fmt: skip
#: PostgreSQL SQLSTATE classes and codes that mean the same: connection exceptions,
#: insufficient resources (disk full), operator intervention (shutdown), system errors,
#: authorization and a missing or refused database.
_PG_UNAVAILABLE = ("08", "53", "57P", "58", "28", "3D000", "42501")
_MAX_REASON = 200


def unavailable_reason(error: BaseException, url: str) -> str:
    """The driver's first line of ``error``, without the URL's password, at most 200 chars."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    try:
        password = make_url(url).password
    except Exception:  # noqa: BLE001 - an unparsable URL holds no password we know of
        password = None
    if password:
        text = text.replace(str(password), "***")
    text = text.replace(url, "the database URL")
    return text[:_MAX_REASON].rstrip(" .:")


def unavailable_error(error: BaseException, url: str) -> DatabaseUnavailableError:
    """The one sentence for a control database that cannot be reached or written."""
    return DatabaseUnavailableError(
        f"the control database is unreachable ({unavailable_reason(error, url)}): "
        "check AUDIENCESYNC_DATABASE_URL / disk space."
    )


def is_unavailable(error: BaseException, *, disconnect: bool = False) -> bool:
    """Whether a driver error means the database is unreachable or unwritable.

    A bad query (no such table, a syntax error) or a serialization failure is not.
    """
    if disconnect:
        return True
    name = getattr(error, "sqlite_errorname", None)
    if name is not None:
        return str(name).startswith(_SQLITE_UNAVAILABLE)
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate is None:
        # psycopg raises connection failures (refused, timed out) without a SQLSTATE.
        return type(error).__name__ == "OperationalError"
    return str(sqlstate).startswith(_PG_UNAVAILABLE)


def _translate(url: str) -> Any:
    def handle_error(context: ExceptionContext) -> None:
        original = context.original_exception
        if context.is_pre_ping:
            return  # a stale pooled connection: the pool reconnects by itself
        connecting = context.connection is None and context.statement is None
        if connecting or is_unavailable(original, disconnect=context.is_disconnect):
            raise unavailable_error(original, url) from None

    return handle_error


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL mode and a busy timeout.

    Errors that mean the database cannot be reached or written (down, moved, refused,
    disk full, read-only) come out as :class:`DatabaseUnavailableError`, one sentence.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "checkout", _sqlite_foreign_keys_on)
    else:
        driver_url = url
        if url.startswith("postgresql://"):
            driver_url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        engine = create_engine(driver_url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    event.listen(engine, "handle_error", _translate(url))
    return engine


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

    @property
    def sqlite_path(self) -> Path | None:
        """The file of a SQLite database (None for another database or in memory)."""
        parsed = make_url(self.url)
        if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
            return None
        return Path(parsed.database)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits when the block ends and rolls back on any error.

        A row changed or removed by someone else meanwhile (an UPDATE or DELETE that
        matched nothing) is a ConflictError, never a server error.
        """
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except StaleDataError:
                _rollback(session, self.url)
                raise ConflictError(
                    "someone else changed or removed this at the same moment: reload it and "
                    "try again."
                ) from None
            except BaseException:
                _rollback(session, self.url)
                raise

    def current_revision(self) -> str | None:
        """The migration revision the database is at, or None when it is empty."""
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def head_revision(self) -> str | None:
        """The newest migration revision this version of audiencesync knows."""
        return ScriptDirectory.from_config(_alembic_config()).get_current_head()

    def is_initialised(self) -> bool:
        """Whether the database holds audiencesync's tables.

        A SQLite file that does not exist is not set up (and is not created here); a
        database that cannot be reached raises DatabaseUnavailableError.
        """
        path = self.sqlite_path
        if path is not None and not path.exists():
            return False
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
                "audiencesync is not set up in this home folder (or AUDIENCESYNC_HOME does not "
                "name the folder you initialised)",
                fix=Fix("init"),
            )
        self.migrate()

    def check(self) -> None:
        """Raise DatabaseUnavailableError unless the database answers a query now."""
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _rollback(session: Session, url: str) -> None:
    """Roll back; a database that went away meanwhile must not hide the first error."""
    try:
        session.rollback()
    except (DatabaseUnavailableError, DBAPIError) as error:
        log.warning("could not roll back: %s", unavailable_reason(error, url))
