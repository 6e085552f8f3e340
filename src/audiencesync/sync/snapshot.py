"""The confirmed snapshot of an export: what Snapchat has acknowledged, per identifier type.

``<home>/exports/<export id>/audiences/<audience id>/confirmed-<type>.parquet`` holds the
acknowledged hashes of one identifier type in one audience (an export that moves to
another audience starts a fresh snapshot there). Each batch the destination acknowledges
is written at once to ``journal/`` as its own small Parquet file (written under a
temporary name, then renamed, so a journal file is either whole or absent). A compaction
folds one type's journal into its confirmed file: ``(confirmed ∪ adds) − removes``, then
deletes those journal files.

Safety argument: a run killed at any instant loses at most the batches in flight (not yet
journaled), which the next run sends again; adding or removing an id twice is harmless.
A journaled removal is deleted only after the compacted file that applies it is in
place, so the snapshot never claims an id Snapchat no longer holds.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from audiencesync import duck
from audiencesync.control.context import Context
from audiencesync.types import IdentifierType

SCHEMA = pa.schema([("hash", pa.string())])
ADD = "add"
REMOVE = "remove"


CLEAR_PENDING = "clear-pending"


def export_dir(home: Path, export_id: int) -> Path:
    return home / "exports" / str(export_id)


def _fsync_replace(temporary: Path, target: Path) -> None:
    with temporary.open("rb") as handle:
        os.fsync(handle.fileno())
    temporary.replace(target)


class Snapshot:
    """One export's confirmed hashes per identifier type, and its journal."""

    def __init__(self, home: Path, export_id: int, audience_id: str) -> None:
        if not audience_id.isdigit():
            raise ValueError("an audience id is a number")
        self.root = export_dir(home, export_id) / "audiences" / audience_id
        self.journal = self.root / "journal"
        self.journal.mkdir(parents=True, exist_ok=True)
        numbers = [int(p.name.split("-", 1)[0]) for p in self.journal.glob("*.parquet")]
        self._sequence = max(numbers, default=0)
        self._lock = threading.Lock()

    def confirmed(self, kind: IdentifierType) -> Path:
        return self.root / f"confirmed-{kind.value}.parquet"

    def record(self, action: str, kind: IdentifierType, hashes: pa.Array) -> None:
        """Journal one acknowledged batch (``add`` or ``remove``) durably."""
        with self._lock:
            self._sequence += 1
            sequence = self._sequence
        # The random part keeps two writers (a run that lost its lease and its successor)
        # from ever replacing each other's file.
        name = f"{sequence:08d}-{action}-{kind.value}-{uuid.uuid4().hex[:12]}.parquet"
        target = self.journal / name
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        pq.write_table(pa.table({"hash": hashes}, schema=SCHEMA), temporary, compression="none")
        _fsync_replace(temporary, target)

    def _journal(self, action: str, kind: IdentifierType) -> list[str]:
        return sorted(str(p) for p in self.journal.glob(f"*-{action}-{kind.value}-*.parquet"))

    def types(self) -> set[IdentifierType]:
        """Types with confirmed or journaled hashes."""
        found = {
            IdentifierType(p.stem.split("-", 1)[1]) for p in self.root.glob("confirmed-*.parquet")
        }
        for path in self.journal.glob("*.parquet"):
            found.add(IdentifierType(path.stem.split("-")[2]))
        return found

    def confirmed_sql(self, kind: IdentifierType) -> str:
        """A DuckDB table expression of one type's confirmed hashes (call after compact)."""
        path = self.confirmed(kind)
        if not path.exists():
            return "(SELECT NULL::VARCHAR AS hash WHERE false)"
        return f"read_parquet('{path}')"

    def compact(self, kind: IdentifierType, con: duckdb.DuckDBPyConnection | None = None) -> None:
        """Fold one type's journal into its confirmed file and clear that journal."""
        adds, removes = self._journal(ADD, kind), self._journal(REMOVE, kind)
        if not adds and not removes:
            return
        target = self.confirmed(kind)
        temporary = self.root / f".confirmed-{kind.value}.{uuid.uuid4().hex}.tmp"
        if len(adds) == 1 and not removes and not target.exists():
            # First acknowledged batch of this type: the journal file is the snapshot.
            Path(adds[0]).replace(target)
            return
        own = con is None
        con = con or duck.connect()
        try:
            parts = [f"SELECT hash FROM {self.confirmed_sql(kind)}"]
            if adds:
                parts.append(f"SELECT hash FROM read_parquet({adds!r})")
            query = " UNION ".join(parts)
            if removes:
                query = f"({query}) EXCEPT SELECT hash FROM read_parquet({removes!r})"
            con.execute(
                f"COPY ({query}) TO '{temporary}' (FORMAT parquet, COMPRESSION uncompressed)"
            )
        finally:
            if own:
                con.close()
        _fsync_replace(temporary, target)
        # Only now that the compacted file is in place; re-applying a journal is harmless.
        for name in adds + removes:
            Path(name).unlink(missing_ok=True)

    def compact_all(self) -> None:
        with duck.connect() as con:
            for kind in self.types():
                self.compact(kind, con)

    def counts(self) -> dict[str, int]:
        """Confirmed identifiers per type (after compaction)."""
        self.compact_all()
        result = {}
        for kind in sorted(self.types()):
            path = self.confirmed(kind)
            if path.exists():
                result[kind.value] = pq.ParquetFile(path).metadata.num_rows
        return result

    def reset(self) -> None:
        """Forget everything confirmed (after the audience was emptied)."""
        for path in [*self.root.glob("confirmed-*.parquet"), *self.journal.glob("*.parquet")]:
            path.unlink(missing_ok=True)

    # A clear empties the audience, then resets the snapshot. The marker, written before
    # and removed after, tells the next run to redo both if a kill fell in between;
    # otherwise the snapshot would claim members the audience no longer has.

    def mark_clear_pending(self) -> None:
        marker = self.root / CLEAR_PENDING
        marker.write_text("the audience is being emptied\n")
        with marker.open("rb") as handle:
            os.fsync(handle.fileno())

    def clear_pending(self) -> bool:
        return (self.root / CLEAR_PENDING).exists()

    def clear_done(self) -> None:
        (self.root / CLEAR_PENDING).unlink(missing_ok=True)


def remove_snapshot(ctx: Context, export_id: int) -> None:
    """Delete an export's snapshot and run files (when the export is removed)."""
    shutil.rmtree(export_dir(ctx.home, export_id), ignore_errors=True)
