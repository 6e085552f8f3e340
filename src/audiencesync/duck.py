"""In-process DuckDB connections with a memory budget and threads sized to the machine.

DuckDB's default budget is 80% of the machine's memory, and its allocator keeps what it
took; the server, the scheduler and every run share one box, so each connection here gets
a share of the machine's memory (``MEMORY_SHARE`` of it, between ``MIN_MEMORY_MB`` and
``MAX_MEMORY_MB``) and as many threads as this process may use cores, and spills larger
joins and sorts to a temporary folder beyond that. ``AUDIENCESYNC_DUCKDB_MEMORY_LIMIT``
(such as ``512MB`` or ``2GB``) and ``AUDIENCESYNC_DUCKDB_THREADS`` override them.
"""

from __future__ import annotations

import os
from typing import Any

import duckdb
import psutil

from audiencesync.errors import UserInputError

#: The share of the machine's memory one connection may use.
MEMORY_SHARE = 1 / 16
MIN_MEMORY_MB = 256
MAX_MEMORY_MB = 1024


def memory_limit() -> str:
    """The per-connection budget: the setting, else a share of the machine's memory."""
    configured = os.environ.get("AUDIENCESYNC_DUCKDB_MEMORY_LIMIT", "").strip()
    if configured:
        return configured
    total_mb = psutil.virtual_memory().total // 2**20
    share = int(total_mb * MEMORY_SHARE)
    return f"{max(MIN_MEMORY_MB, min(MAX_MEMORY_MB, share))}MB"


def threads() -> int:
    """DuckDB's threads: the setting, else the cores this process may run on."""
    configured = os.environ.get("AUDIENCESYNC_DUCKDB_THREADS", "").strip()
    if configured:
        try:
            number = int(configured)
        except ValueError:
            number = 0
        if number >= 1:
            return number
        raise UserInputError(
            f"AUDIENCESYNC_DUCKDB_THREADS must be a whole number of at least 1, not {configured!r}."
        )
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def config(**extra: Any) -> dict[str, Any]:
    """DuckDB configuration with the memory budget and threads, plus ``extra`` settings."""
    return {"memory_limit": memory_limit(), "threads": threads(), **extra}


def quiet(connection: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Turn off DuckDB's own progress bar: it draws on stderr during long queries, while
    runs report progress through the run record and the command line's bar."""
    connection.execute("SET enable_progress_bar = false")
    return connection


def connect(**extra: Any) -> duckdb.DuckDBPyConnection:
    """An in-memory connection within the memory budget."""
    return quiet(duckdb.connect(":memory:", config=config(**extra)))
