"""In-process DuckDB connections with a bounded memory budget.

DuckDB's default budget is 80% of the machine's memory, and its allocator keeps what it
took; the server, the scheduler and every run share one box, so each connection here gets
``AUDIENCESYNC_DUCKDB_MEMORY_LIMIT`` and spills larger joins and sorts to a temporary
folder instead.
"""

from __future__ import annotations

import os
from typing import Any

import duckdb

DEFAULT_MEMORY_LIMIT = "256MB"


def memory_limit() -> str:
    """The per-connection budget (``AUDIENCESYNC_DUCKDB_MEMORY_LIMIT``, default 256MB)."""
    return os.environ.get("AUDIENCESYNC_DUCKDB_MEMORY_LIMIT", DEFAULT_MEMORY_LIMIT)


def config(**extra: Any) -> dict[str, Any]:
    """DuckDB configuration with the memory budget, plus ``extra`` settings."""
    return {"memory_limit": memory_limit(), **extra}


def quiet(connection: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Turn off DuckDB's own progress bar: it draws on stderr during long queries, while
    runs report progress through the run record and the command line's bar."""
    connection.execute("SET enable_progress_bar = false")
    return connection


def connect(**extra: Any) -> duckdb.DuckDBPyConnection:
    """An in-memory connection within the memory budget."""
    return quiet(duckdb.connect(":memory:", config=config(**extra)))
