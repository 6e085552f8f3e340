"""The confirmed snapshot of an export: what Snapchat has acknowledged, per identifier type.

``<home>/exports/<export id>/confirmed.parquet`` holds (type, hash) rows; each batch the
destination acknowledges is written at once to ``journal/`` as its own small Parquet file
(written to a temporary name, then renamed, so a file is either whole or absent). A
compaction folds the journal into ``confirmed.parquet``: ``(confirmed ∪ adds) − removes``.
A run killed at any instant therefore loses at most the batches in flight, which the next
run sends again (adding or removing an id twice is harmless at Snapchat).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from audiencesync.control.context import Context
from audiencesync.types import IdentifierType

SCHEMA = pa.schema([("type", pa.string()), ("hash", pa.string())])
ADD = "add"
REMOVE = "remove"


def export_dir(home: Path, export_id: int) -> Path:
    return home / "exports" / str(export_id)


def _write_atomically(table: pa.Table, target: Path) -> None:
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(table, temporary, compression="zstd")
    with temporary.open("rb") as handle:
        os.fsync(handle.fileno())
    temporary.replace(target)


class Snapshot:
    """One export's confirmed (type, hash) set and its journal."""

    def __init__(self, home: Path, export_id: int) -> None:
        self.root = export_dir(home, export_id)
        self.journal = self.root / "journal"
        self.confirmed = self.root / "confirmed.parquet"
        self.journal.mkdir(parents=True, exist_ok=True)
        self._sequence = self._last_sequence()

    def _last_sequence(self) -> int:
        numbers = [int(p.name.split("-", 1)[0]) for p in self.journal.glob("*.parquet")]
        return max(numbers, default=0)

    def record(self, action: str, kind: IdentifierType, hashes: pa.Array) -> None:
        """Journal one acknowledged batch (``add`` or ``remove``) durably."""
        self._sequence += 1
        table = pa.table(
            {"type": pa.array([kind.value] * len(hashes), pa.string()), "hash": hashes},
            schema=SCHEMA,
        )
        _write_atomically(
            table, self.journal / f"{self._sequence:08d}-{action}-{kind.value}.parquet"
        )

    def _journal_files(self, action: str) -> list[str]:
        return sorted(str(p) for p in self.journal.glob(f"*-{action}-*.parquet"))

    def confirmed_sql(self) -> str:
        """A DuckDB table expression over the confirmed set (compacted)."""
        if not self.confirmed.exists():
            return "(SELECT NULL::VARCHAR AS type, NULL::VARCHAR AS hash WHERE false)"
        return f"read_parquet('{self.confirmed}')"

    def compact(self, con: duckdb.DuckDBPyConnection | None = None) -> None:
        """Fold the journal into ``confirmed.parquet`` and clear the journal."""
        adds, removes = self._journal_files(ADD), self._journal_files(REMOVE)
        if not adds and not removes:
            return
        own = con is None
        con = con or duckdb.connect()
        try:
            parts = [f"SELECT type, hash FROM {self.confirmed_sql()}"]
            if adds:
                parts.append(f"SELECT type, hash FROM read_parquet({adds!r})")
            query = " UNION ".join(parts)
            if removes:
                query = f"({query}) EXCEPT SELECT type, hash FROM read_parquet({removes!r})"
            temporary = self.root / f".confirmed.{uuid.uuid4().hex}.tmp"
            con.execute(f"COPY ({query}) TO '{temporary}' (FORMAT parquet, COMPRESSION zstd)")
            with temporary.open("rb") as handle:
                os.fsync(handle.fileno())
            temporary.replace(self.confirmed)
        finally:
            if own:
                con.close()
        # Only after the new confirmed file is in place; re-applying a journal is harmless.
        for name in adds + removes:
            Path(name).unlink(missing_ok=True)

    def counts(self) -> dict[str, int]:
        """Confirmed identifiers per type (after compaction)."""
        self.compact()
        if not self.confirmed.exists():
            return {}
        rows = duckdb.sql(
            f"SELECT type, count(*) FROM read_parquet('{self.confirmed}') GROUP BY type"
        ).fetchall()
        return {str(t): int(n) for t, n in rows}

    def reset(self) -> None:
        """Forget everything confirmed (after the audience was emptied)."""
        self.confirmed.unlink(missing_ok=True)
        for path in self.journal.glob("*.parquet"):
            path.unlink(missing_ok=True)
        self._sequence = 0


def remove_snapshot(ctx: Context, export_id: int) -> None:
    """Delete an export's snapshot and run files (when the export is removed)."""
    shutil.rmtree(export_dir(ctx.home, export_id), ignore_errors=True)
