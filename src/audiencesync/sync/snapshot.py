"""The confirmed snapshot of an export: what Snapchat has acknowledged, per identifier type.

It lives in the shared storage (``audiencesync.storage``: the home folder by default, or
a bucket every worker shares).
``exports/<export id>/audiences/<audience id>/confirmed-<type>.parquet`` (the base) holds
acknowledged hashes of one identifier type in one audience (an export that moves to
another audience starts a fresh snapshot there). Each batch the destination
acknowledges is written at once to ``journal/`` as its own small Parquet file, named
``<sequence>-<add|remove>-<type>-<random>.parquet``, whole or absent (on a local disk
written under a temporary name, fsynced and renamed; in a bucket one upload that appears
only when it completes). A batch counts as confirmed only once that write returned.

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

A run's scratch files (current identifiers, planned adds and removals) stay on the local
disk of the process that runs it, under ``<home>/exports/<export id>/audiences/<audience
id>/runs/<run id>``; one run per export at a time writes the snapshot (the run lease).
"""

from __future__ import annotations

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
from audiencesync.errors import ConflictError
from audiencesync.storage import Storage, parquet_options
from audiencesync.types import IdentifierType

SCHEMA = pa.schema([("hash", pa.string())])
ADD = "add"
REMOVE = "remove"


CLEAR_PENDING = "clear-pending"
#: Parquet key-value metadata: a random token per written base or journal file, so the
#: cached count of a base in a bucket (whose times have whole seconds) is never taken
#: for another base of the same size.
GENERATION = "audiencesync.generation"

#: The journal of a type is folded into its base once it holds this share of the base's
#: rows, or this many files (each read costs a little).
COMPACT_SHARE = 0.2
COMPACT_FILES = 64
#: counts of what is held taken before giving up on a snapshot that keeps changing.
HELD_ATTEMPTS = 5


class SnapshotBusyError(ConflictError):
    """The snapshot changed under every attempt to count it (a run is writing it)."""


@dataclass(frozen=True, slots=True)
class JournalFile:
    """One acknowledged batch: its place in the replay, its action, type and object key."""

    sequence: int
    action: str
    kind: IdentifierType
    key: str

    @classmethod
    def parse(cls, key: str) -> JournalFile:
        """Read ``<sequence>-<action>-<type>-<random>.parquet`` (what :meth:`record` writes)."""
        sequence, action, kind, _ = key.rsplit("/", 1)[-1].split("-", 3)
        return cls(int(sequence), action, IdentifierType(kind), key)


def scratch_parquet(path: Path, schema: pa.Schema) -> dict[str, Any]:
    """``ParquetWriter`` arguments for local scratch files of hashes and identifiers."""
    return {"where": path, **parquet_options(schema)}


def read_batches(path: Path | pa.NativeFile, size: int = 100_000) -> Iterator[pa.RecordBatch]:
    """A file of hashes in batches of ``size`` rows (spanning row groups), in bounded memory.

    Arrow's default pre-buffering keeps every column chunk read so far: reading a 10M-row
    file that way held a gigabyte by its end.
    """
    reader = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    yield from reader.iter_batches(batch_size=size, columns=["hash"])


def export_key(export_id: int) -> str:
    return f"exports/{export_id}"


def export_dir(home: Path, export_id: int) -> Path:
    """The export's local folder under a home: its runs' scratch (never shared)."""
    return home / export_key(export_id)


def _generation() -> dict[str, str]:
    return {GENERATION: uuid.uuid4().hex}


def _is_temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


class Snapshot:
    """One export's confirmed hashes per identifier type, and its journal."""

    def __init__(
        self, storage: Storage, export_id: int, audience_id: str, home: Path | None = None
    ) -> None:
        """``home`` holds the runs' local scratch (default: the storage's own folder)."""
        if not (audience_id.isascii() and audience_id.isdigit()):
            raise ValueError("an audience id is a number")
        self.storage = storage
        self.root = f"{export_key(export_id)}/audiences/{audience_id}"
        self.journal = f"{self.root}/journal"
        local = storage.local_path("") if home is None else home
        #: this process's working folder for the snapshot's runs (None: none given).
        self.work = None if local is None else local / self.root
        #: the local home folder (privacy lists are read there), when one is given.
        self.home = local
        self._sequence = max((item.sequence for item in self._journal_files()), default=0)
        self._lock = threading.Lock()

    @classmethod
    def of(cls, ctx: Context, export_id: int, audience_id: str) -> Snapshot:
        """The snapshot of an export's audience in the context's storage."""
        return cls(ctx.storage, export_id, audience_id, ctx.home)

    def confirmed(self, kind: IdentifierType) -> str:
        """The key of one type's base (the confirmed set is it plus the journal)."""
        return f"{self.root}/confirmed-{kind.value}.parquet"

    def record(self, action: str, kind: IdentifierType, hashes: pa.Array) -> None:
        """Journal one acknowledged batch (``add`` or ``remove``) durably."""
        with self._lock:
            self._sequence += 1
            sequence = self._sequence
        # The random part keeps two writers (a run that lost its lease and its successor)
        # from ever replacing each other's file.
        name = f"{sequence:08d}-{action}-{kind.value}-{uuid.uuid4().hex[:12]}.parquet"
        schema = SCHEMA.with_metadata(_generation())
        self.storage.write_parquet(
            f"{self.journal}/{name}", schema, [pa.table({"hash": hashes}, schema=SCHEMA)]
        )

    def _journal_files(self) -> list[JournalFile]:
        return [
            JournalFile.parse(entry.key)
            for entry in self.storage.listing(self.journal)
            if entry.name.endswith(".parquet") and not entry.name.startswith(".")
        ]

    def _journal(self, kind: IdentifierType) -> list[JournalFile]:
        """One type's journal files, in the order they are replayed."""
        found = [item for item in self._journal_files() if item.kind is kind]
        return sorted(found, key=lambda item: (item.sequence, item.action == REMOVE))

    def _bases(self) -> list[str]:
        return [
            entry.name
            for entry in self.storage.listing(self.root)
            if entry.name.startswith("confirmed-") and entry.name.endswith(".parquet")
        ]

    def types(self) -> set[IdentifierType]:
        """Types with confirmed or journaled hashes."""
        found = {
            IdentifierType(name[len("confirmed-") : -len(".parquet")]) for name in self._bases()
        }
        return found | {item.kind for item in self._journal_files()}

    def confirmed_sql(self, kind: IdentifierType, con: duckdb.DuckDBPyConnection) -> str | None:
        """A DuckDB query (on ``con``) of one type's confirmed hashes: the base with the
        journal replayed, or None when nothing of this type was ever confirmed.

        A hash may appear twice (a ``--full`` run re-sent it before any base existed);
        readers use set operations, so that is harmless.
        """
        journal = self._journal(kind)
        if not journal and not self.storage.exists(self.confirmed(kind)):
            return None
        return self._confirmed_sql(kind, journal, con)

    def _base_sql(self, kind: IdentifierType, con: duckdb.DuckDBPyConnection) -> str:
        key = self.confirmed(kind)
        if self.storage.exists(key):
            return f"SELECT hash FROM {self.storage.scan(con, key)}"
        return "SELECT NULL::VARCHAR AS hash WHERE false"

    def _confirmed_sql(
        self, kind: IdentifierType, journal: list[JournalFile], con: duckdb.DuckDBPyConnection
    ) -> str:
        base = self._base_sql(kind, con)
        if not journal:
            return base
        latest = self._latest_sql(journal, con)
        return (
            f"WITH latest AS ({latest}) "
            f"SELECT hash FROM ({base}) AS base ANTI JOIN latest USING (hash) "
            "UNION ALL SELECT hash FROM latest WHERE present"
        )

    def _latest_sql(self, journal: list[JournalFile], con: duckdb.DuckDBPyConnection) -> str:
        """Each journaled hash once, with whether its last action (in replay order) added it."""
        entries = " UNION ALL ".join(
            f"SELECT hash, {rank} AS rank, {str(item.action == ADD).lower()} AS present "
            f"FROM {self.storage.scan(con, item.key)}"
            for rank, item in enumerate(journal)
        )
        return f"SELECT hash, arg_max(present, rank) AS present FROM ({entries}) GROUP BY hash"

    def held(self) -> dict[str, int]:
        """Confirmed identifiers per type (distinct hashes), exactly as :meth:`counts`, but
        cheap on a diff run: the base's distinct count is computed once per base and kept
        beside it (keyed by the file's version), and the journal's effect is counted
        against the base (new adds, removals of base hashes).

        A count taken while the snapshot changed (a run journaling or compacting it: a
        journal file deleted mid-query, a base replaced between two reads) is taken again;
        if it keeps changing, :class:`SnapshotBusyError`.
        """
        for attempt in range(HELD_ATTEMPTS):
            before = self._files_key()
            try:
                result = self._held_once()
            except (duckdb.IOException, duckdb.InvalidInputException, FileNotFoundError):
                if self._files_key() == before or attempt == HELD_ATTEMPTS - 1:
                    raise  # the files did not change: a real defect of the snapshot
                continue
            if self._files_key() == before:
                return result
        raise SnapshotBusyError(
            "the snapshot kept changing while it was counted (a run is under way): "
            "read the audience again when the run ends."
        )

    def _files_key(self) -> tuple[tuple[str, str], ...]:
        """The snapshot's confirmed and journal files as they are now (name and version):
        equal before and after a count means nothing changed under it."""
        found = [
            (entry.name, entry.version)
            for entry in [*self.storage.listing(self.root), *self.storage.listing(self.journal)]
            if entry.name.endswith(".parquet") and not entry.name.startswith(".")
        ]
        return tuple(sorted(found))

    def _held_once(self) -> dict[str, int]:
        result = {}
        with duck.connect() as con:
            for kind in sorted(self.types()):
                exists = self.storage.exists(self.confirmed(kind))
                number = self._base_distinct(kind, con) if exists else 0
                journal = self._journal(kind)
                if journal:
                    base = self._base_sql(kind, con)
                    latest = self._latest_sql(journal, con)
                    # An inner join builds its table on the small journal side and scans
                    # the base once; DISTINCT because the base may repeat a hash.
                    (present, kept, removed) = con.execute(
                        f"WITH latest AS ({latest}), "
                        f"matched AS (SELECT DISTINCT latest.hash, latest.present FROM ({base}) "
                        "AS base JOIN latest USING (hash)) SELECT "
                        "(SELECT count(*) FROM latest WHERE present), "
                        "(SELECT count(*) FROM matched WHERE present), "
                        "(SELECT count(*) FROM matched WHERE NOT present)"
                    ).fetchone() or (0, 0, 0)
                    number += int(present) - int(kept) - int(removed)
                if number:
                    result[kind.value] = number
        return result

    def _base_version(self, kind: IdentifierType) -> str:
        """What identifies the current base of ``kind``: its inode, size and time on a
        local disk; in a bucket (times in whole seconds) the generation in its footer."""
        key = self.confirmed(kind)
        entry = next((e for e in self.storage.listing(self.root) if e.key == key), None)
        if entry is None:
            raise FileNotFoundError(key)  # replaced under the count: counted again
        if self.storage.is_local:
            return entry.version
        with self.storage.open_input(key) as handle:
            metadata = pq.read_metadata(handle).metadata or {}
        generation = metadata.get(GENERATION.encode())
        return f"{entry.version} {generation.decode() if generation else '-'}"

    def _base_distinct(self, kind: IdentifierType, con: duckdb.DuckDBPyConnection) -> int:
        key = self._base_version(kind).replace(" ", "/")
        cache = f"{self.root}/count-{kind.value}.txt"
        try:
            cached_key, cached = self.storage.read_bytes(cache).decode().rsplit(" ", 1)
            if cached_key == key:
                return int(cached)
        except (OSError, ValueError):
            pass
        (number,) = con.execute(
            f"SELECT count(DISTINCT hash) FROM {self.storage.scan(con, self.confirmed(kind))}"
        ).fetchone() or (0,)
        self.storage.write_bytes(cache, f"{key} {int(number)}".encode())
        return int(number)

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
        exists = self.storage.exists(target)
        if len(journal) == 1 and journal[0].action == ADD and not exists:
            # First acknowledged batch of this type: the journal file is the base.
            self.storage.rename(journal[0].key, target)
            return True
        if not force and not self._journal_is_large(target, exists, journal):
            return False
        if exists or any(item.action == REMOVE for item in journal):
            own = con is None
            con = con or duck.connect()
            try:
                query = self._confirmed_sql(kind, journal, con)
                self.storage.write_query(con, query, target, _generation())
            finally:
                if own:
                    con.close()
        else:
            # A first load (adds only, no base): the files one after another, a batch at a
            # time. A run's adds are distinct and never already confirmed.
            self.storage.write_parquet(
                target, SCHEMA.with_metadata(_generation()), self._journal_batches(journal)
            )
        # Only now that the new base is in place; replaying a journal file again is harmless.
        for item in journal:
            self.storage.delete(item.key)
        return True

    def _journal_batches(self, journal: list[JournalFile]) -> Iterator[pa.RecordBatch]:
        for item in journal:
            with self.storage.open_input(item.key) as handle:
                yield from read_batches(handle)

    def _rows(self, key: str) -> int:
        with self.storage.open_input(key) as handle:
            return int(pq.read_metadata(handle).num_rows)

    def _journal_is_large(self, base: str, exists: bool, journal: list[JournalFile]) -> bool:
        if len(journal) >= COMPACT_FILES:
            return True
        rows = sum(self._rows(item.key) for item in journal)
        base_rows = self._rows(base) if exists else 0
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
                query = self.confirmed_sql(kind, con)
                if query is None:
                    continue
                (number,) = con.execute(
                    f"SELECT count(DISTINCT hash) FROM ({query})"
                ).fetchone() or (0,)
                if number:
                    result[kind.value] = int(number)
        return result

    def scratch(self, run_id: int) -> Path:
        """A run's local scratch folder, after sweeping what killed runs left behind.

        Scratch files hold normalized identifiers (personal data): a run removes its own
        folder when it ends, and one killed before that is swept by the export's next run
        on this machine (one run per export at a time holds the lease), with any
        half-written file of the snapshot.
        """
        if self.work is None:
            raise ValueError("this snapshot was opened without a local working folder")
        for leftover in self.work.parent.glob("*/runs/*"):
            if leftover.name != str(run_id):
                shutil.rmtree(leftover, ignore_errors=True)
        for entry in [*self.storage.listing(self.root), *self.storage.listing(self.journal)]:
            if _is_temporary(entry.name):
                self.storage.delete(entry.key)
        path = self.work / "runs" / str(run_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def reset(self) -> None:
        """Forget everything confirmed (after the audience was emptied)."""
        for entry in [*self.storage.listing(self.root), *self.storage.listing(self.journal)]:
            name = entry.name
            if (
                name.startswith(("confirmed-", "count-")) or entry.key.startswith(self.journal)
            ) and (name.endswith((".parquet", ".txt"))):
                self.storage.delete(entry.key)
        self.drop_held()

    # Removals held by the removal guard wait in ``held/<run id>/remove-<type>.parquet``
    # until approved (sent) or dismissed (deleted). The folder is published whole
    # (storage.publish_folder), so a held plan is complete or absent after any crash.

    def hold(self, run_id: int, files: list[tuple[IdentifierType, Path]]) -> None:
        """Keep a run's planned removal files (hashes) until approved or dismissed."""
        self.storage.publish_folder(
            {f"{REMOVE}-{kind.value}.parquet": path for kind, path in files},
            f"{self.root}/held/{run_id}",
        )

    def held_removals(self, run_id: int) -> dict[IdentifierType, str]:
        """The keys of the removal files a run held back, by type (empty when none are kept)."""
        folder = f"{self.root}/held/{run_id}"
        if not self.storage.folder_complete(folder):
            return {}
        found = sorted(
            entry.key
            for entry in self.storage.listing(folder)
            if entry.name.startswith(f"{REMOVE}-") and entry.name.endswith(".parquet")
        )
        return {
            IdentifierType(key.rsplit("/", 1)[-1][len(REMOVE) + 1 : -len(".parquet")]): key
            for key in found
        }

    def drop_held(self, run_id: int | None = None) -> None:
        """Forget the removals held by one run (every run when None)."""
        held = f"{self.root}/held"
        names = [str(run_id)] if run_id is not None else self.storage.folders(held)
        for name in names:
            self.storage.delete_tree(f"{held}/{name}")

    # A clear empties the audience, then resets the snapshot. The marker, written before
    # and removed after, tells the next run to redo both if a kill fell in between;
    # otherwise the snapshot would claim members the audience no longer has.

    def mark_clear_pending(self) -> None:
        self.storage.write_bytes(f"{self.root}/{CLEAR_PENDING}", b"the audience is being emptied\n")

    def clear_pending(self) -> bool:
        return self.storage.exists(f"{self.root}/{CLEAR_PENDING}")

    def clear_done(self) -> None:
        self.storage.delete(f"{self.root}/{CLEAR_PENDING}")


def clear_pending(storage: Storage, export_id: int, audience_id: str) -> bool:
    """Whether an emptying (a clear or a replace) of the audience is begun and not done.

    Reads the marker only (creates nothing), for views that must not claim a held figure.
    """
    if not (audience_id.isascii() and audience_id.isdigit()):
        return False
    return storage.exists(f"{export_key(export_id)}/audiences/{audience_id}/{CLEAR_PENDING}")


def remove_snapshot(ctx: Context, export_id: int) -> None:
    """Delete an export's snapshot and run files (when the export is removed)."""
    ctx.storage.delete_tree(export_key(export_id))
    shutil.rmtree(ctx.home / export_key(export_id), ignore_errors=True)
