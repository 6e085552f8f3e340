"""The confirmed snapshot of an export: what Snapchat has acknowledged, per identifier type.

``<home>/exports/<export id>/audiences/<audience id>/confirmed-<type>.parquet`` (the base)
holds acknowledged hashes of one identifier type in one audience (an export that moves
to another audience starts a fresh snapshot there). Each batch the destination
acknowledges is written at once to ``journal/`` as its own small Parquet file, named
``<sequence>-<add|remove>-<type>-<random>.parquet`` and written under a temporary name,
then renamed, so a journal file is either whole or absent.

The confirmed set of a type is the base with the journal replayed in sequence order:
for each hash in the journal, its latest action wins (a removal wins a tie). Readers
use that set directly (:meth:`Snapshot.confirmed_sql`), so a run's few journaled
batches need no rewrite of the base; :meth:`Snapshot.compact` folds the journal into a
new base only once the journal has grown to a share of the base (or when asked to).

Safety argument: a run killed at any instant loses at most the batches in flight (not yet
journaled), which the next run sends again; adding or removing an id twice is harmless.
A compaction writes the confirmed set to a new base, renames it into place and only then
deletes the journal files it folded; replaying those files again onto the new base
gives the same set, so a kill in between changes nothing.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

#: The journal of a type is folded into its base once it holds this share of the base's
#: rows, or this many files (each read costs a little).
COMPACT_SHARE = 0.2
COMPACT_FILES = 64


@dataclass(frozen=True, slots=True)
class JournalFile:
    """One acknowledged batch: its place in the replay, its action, type and file."""

    sequence: int
    action: str
    kind: IdentifierType
    path: Path

    @classmethod
    def parse(cls, path: Path) -> JournalFile:
        """Read ``<sequence>-<action>-<type>-<random>.parquet`` (what :meth:`record` writes)."""
        sequence, action, kind, _ = path.name.split("-", 3)
        return cls(int(sequence), action, IdentifierType(kind), path)


def scratch_parquet(path: Path, schema: pa.Schema) -> dict[str, Any]:
    """``ParquetWriter`` arguments for files of hashes and identifiers: written to be read
    once or a few times, so no compression and no dictionaries (random 64-hex hashes do
    not repeat; building a dictionary of them took most of a write)."""
    return {
        "where": path,
        "schema": schema,
        "compression": "none",
        "use_dictionary": False,
        "write_statistics": False,
    }


def read_batches(path: Path, size: int = 100_000) -> Iterator[pa.RecordBatch]:
    """A file of hashes in batches of ``size`` rows (spanning row groups), in bounded memory.

    Arrow's default pre-buffering keeps every column chunk read so far: reading a 10M-row
    file that way held a gigabyte by its end.
    """
    reader = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    yield from reader.iter_batches(batch_size=size, columns=["hash"])


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
        self._sequence = max((item.sequence for item in self._journal_files()), default=0)
        self._lock = threading.Lock()

    def confirmed(self, kind: IdentifierType) -> Path:
        """The base file of one type (the confirmed set is it plus the journal)."""
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
        with pq.ParquetWriter(**scratch_parquet(temporary, SCHEMA)) as writer:
            writer.write_table(pa.table({"hash": hashes}, schema=SCHEMA))
        _fsync_replace(temporary, target)

    def _journal_files(self) -> list[JournalFile]:
        return [JournalFile.parse(path) for path in self.journal.glob("*.parquet")]

    def _journal(self, kind: IdentifierType) -> list[JournalFile]:
        """One type's journal files, in the order they are replayed."""
        found = [item for item in self._journal_files() if item.kind is kind]
        return sorted(found, key=lambda item: (item.sequence, item.action == REMOVE))

    def types(self) -> set[IdentifierType]:
        """Types with confirmed or journaled hashes."""
        found = {
            IdentifierType(p.stem.split("-", 1)[1]) for p in self.root.glob("confirmed-*.parquet")
        }
        return found | {item.kind for item in self._journal_files()}

    def confirmed_sql(self, kind: IdentifierType) -> str | None:
        """A DuckDB query of one type's confirmed hashes: the base with the journal replayed,
        or None when nothing of this type was ever confirmed.

        A hash may appear twice (a ``--full`` run re-sent it before any base existed);
        readers use set operations, so that is harmless.
        """
        journal = self._journal(kind)
        if not journal and not self.confirmed(kind).exists():
            return None
        return self._confirmed_sql(kind, journal)

    def _confirmed_sql(self, kind: IdentifierType, journal: list[JournalFile]) -> str:
        path = self.confirmed(kind)
        base = (
            f"SELECT hash FROM read_parquet('{path}')"
            if path.exists()
            else "SELECT NULL::VARCHAR AS hash WHERE false"
        )
        if not journal:
            return base
        # Each file's rank is its place in the replay; a hash's last action decides.
        entries = " UNION ALL ".join(
            f"SELECT hash, {rank} AS rank, {str(item.action == ADD).lower()} AS present "
            f"FROM read_parquet('{item.path}')"
            for rank, item in enumerate(journal)
        )
        latest = f"SELECT hash, arg_max(present, rank) AS present FROM ({entries}) GROUP BY hash"
        return (
            f"WITH latest AS ({latest}) "
            f"SELECT hash FROM ({base}) AS base ANTI JOIN latest USING (hash) "
            "UNION ALL SELECT hash FROM latest WHERE present"
        )

    def compact(
        self,
        kind: IdentifierType,
        con: duckdb.DuckDBPyConnection | None = None,
        *,
        force: bool = False,
    ) -> bool:
        """Fold one type's journal into a new base when it has grown (always if ``force``).

        The journal is folded once it holds at least ``COMPACT_SHARE`` of the base's rows
        or ``COMPACT_FILES`` files, so a run that sends a small difference leaves the
        base alone. Returns whether a new base was written.
        """
        journal = self._journal(kind)
        if not journal:
            return False
        target = self.confirmed(kind)
        if len(journal) == 1 and journal[0].action == ADD and not target.exists():
            # First acknowledged batch of this type: the journal file is the base.
            journal[0].path.replace(target)
            return True
        if not force and not self._journal_is_large(target, journal):
            return False
        temporary = self.root / f".confirmed-{kind.value}.{uuid.uuid4().hex}.tmp"
        if target.exists() or any(item.action == REMOVE for item in journal):
            own = con is None
            con = con or duck.connect()
            try:
                query = self._confirmed_sql(kind, journal)
                con.execute(
                    f"COPY ({query}) TO '{temporary}' (FORMAT parquet, COMPRESSION uncompressed)"
                )
            finally:
                if own:
                    con.close()
        else:
            # A first load (adds only, no base): the files one after another, a batch at a
            # time. A run's adds are distinct and never already confirmed.
            with pq.ParquetWriter(**scratch_parquet(temporary, SCHEMA)) as writer:
                for item in journal:
                    for batch in read_batches(item.path):
                        writer.write_batch(batch)
        _fsync_replace(temporary, target)
        # Only now that the new base is in place; replaying a journal file again is harmless.
        for item in journal:
            item.path.unlink(missing_ok=True)
        return True

    @staticmethod
    def _journal_is_large(base: Path, journal: list[JournalFile]) -> bool:
        if len(journal) >= COMPACT_FILES:
            return True
        rows = sum(pq.ParquetFile(item.path).metadata.num_rows for item in journal)
        base_rows = pq.ParquetFile(base).metadata.num_rows if base.exists() else 0
        return bool(rows >= COMPACT_SHARE * base_rows)

    def compact_all(self, *, force: bool = False) -> None:
        with duck.connect() as con:
            for kind in self.types():
                self.compact(kind, con, force=force)

    def counts(self) -> dict[str, int]:
        """Confirmed identifiers per type."""
        result = {}
        with duck.connect() as con:
            for kind in sorted(self.types()):
                query = self.confirmed_sql(kind)
                if query is None:
                    continue
                (number,) = con.execute(
                    f"SELECT count(DISTINCT hash) FROM ({query})"
                ).fetchone() or (0,)
                if number:
                    result[kind.value] = int(number)
        return result

    def scratch(self, run_id: int) -> Path:
        """A run's scratch folder, after sweeping what killed runs left behind.

        Scratch files hold normalized identifiers (personal data): a run removes its own
        folder when it ends, and one killed before that is swept by the export's next run
        (one run per export at a time holds the lease), with any half-written file.
        """
        for leftover in self.root.parent.glob("*/runs/*"):
            if leftover.name != str(run_id):
                shutil.rmtree(leftover, ignore_errors=True)
        for leftover in [*self.root.glob(".*.tmp"), *self.journal.glob(".*.tmp")]:
            leftover.unlink(missing_ok=True)
        path = self.root / "runs" / str(run_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

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
