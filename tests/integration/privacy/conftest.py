"""Fixtures: a home (SQLite and PostgreSQL) wired to a running emulator."""

from tests.integration.sync.conftest import ctx, emulator

__all__ = ["ctx", "emulator"]
