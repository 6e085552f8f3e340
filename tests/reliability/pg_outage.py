"""A PostgreSQL database of a test's own that the test can make unreachable and back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import own_postgres_database, postgres_url_or_skip

PREFIX = "audiencesync_rel_"


class OwnDatabase:
    """``audiencesync_rel_<random>`` on the test server; :meth:`outage` blocks it."""

    def __init__(self) -> None:
        self._own = ExitStack()
        self.url = self._own.enter_context(own_postgres_database(PREFIX))
        self.name = str(make_url(self.url).database)
        server = make_url(postgres_url_or_skip()).set(
            drivername="postgresql+psycopg", database="postgres"
        )
        self._admin = create_engine(server, isolation_level="AUTOCOMMIT")

    def block(self) -> None:
        """Refuse new connections and end the open ones (as if the server went away)."""
        with self._admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false'))
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": self.name},
            )

    def unblock(self) -> None:
        with self._admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true'))

    @contextmanager
    def outage(self) -> Iterator[None]:
        self.block()
        try:
            yield
        finally:
            self.unblock()

    def drop(self) -> None:
        self.unblock()
        self._own.close()  # dropped by own_postgres_database, connections forced off
        self._admin.dispose()
