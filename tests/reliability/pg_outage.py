"""A PostgreSQL database of a test's own that the test can make unreachable and back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import postgres_url_or_skip

PREFIX = "audiencesync_rel_"


class OwnDatabase:
    """``audiencesync_rel_<random>`` on the test server; :meth:`outage` blocks it."""

    def __init__(self) -> None:
        base = make_url(postgres_url_or_skip())
        self.name = f"{PREFIX}{uuid.uuid4().hex[:10]}"
        self.url = base.set(database=self.name).render_as_string(hide_password=False)
        server = base.set(drivername="postgresql+psycopg", database="postgres")
        self._admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with self._admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{self.name}"'))

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
        with self._admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self._admin.dispose()
