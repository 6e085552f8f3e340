"""Suppression lists, erased identifiers and consent: what a run must never send.

Storage (hashes only, never a raw value, never logged):

- a suppression list's hashes: ``<home>/privacy/lists/<list id>/<random>.parquet``
  (one column ``hash``, 64 lowercase hex characters), written under a temporary name and
  renamed, so a file is whole or absent;
- erased identifiers (the global list every export obeys):
  ``<home>/privacy/erasures/<erasure id>-<type>.parquet``.

A run asks :func:`with_exclusions` for its export's exclusion files (every list that
applies to it, and every erasure), merged per identifier type into its scratch folder;
the engine's diff then never adds an excluded hash and removes the excluded hashes the
audience holds, in add-only mode too (docs/privacy.md). :class:`ConsentSplit` takes the
members without consent out of the stream before their identifiers are counted, and
keeps their normalized identifiers apart so the diff excludes them as well.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import or_, select

from audiencesync import duck
from audiencesync.control.context import Context
from audiencesync.control.privacy_models import SuppressionList, SuppressionListExport
from audiencesync.identifiers import HASH_SQL, PREPARED_SCHEMA, prepare_batch
from audiencesync.types import IdentifierType

if TYPE_CHECKING:
    from audiencesync.sync.engine import RunInput, RunOutcome

SCHEMA = pa.schema([("hash", pa.string())])
PRIVACY_DIR = "privacy"
WITHDRAWN = "withdrawn"
SUPPRESSED = "suppressed"


def privacy_dir(home: Path) -> Path:
    return home / PRIVACY_DIR


def list_dir(home: Path, list_id: int) -> Path:
    return privacy_dir(home) / "lists" / str(list_id)


def erasure_dir(home: Path) -> Path:
    return privacy_dir(home) / "erasures"


def write_hashes(target: Path, hashes: Iterable[pa.Array]) -> int:
    """Write arrays of hashes to ``target`` durably (temporary name, fsync, rename);
    how many rows."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    rows = 0
    try:
        with pq.ParquetWriter(temporary, SCHEMA, compression="zstd") as writer:
            for array in hashes:
                if len(array):
                    writer.write_table(pa.table({"hash": array.cast(pa.string())}, schema=SCHEMA))
                    rows += len(array)
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
        temporary.replace(target)
    finally:
        temporary.unlink(missing_ok=True)
    return rows


def list_files(home: Path, list_id: int) -> list[Path]:
    return sorted(list_dir(home, list_id).glob("*.parquet"))


def erasure_files(home: Path, kind: IdentifierType | None = None) -> list[Path]:
    pattern = f"*-{kind.value}.parquet" if kind is not None else "*.parquet"
    return sorted(erasure_dir(home).glob(pattern))


def erasure_hash_files(home: Path, erasure_id: int) -> dict[IdentifierType, Path]:
    """One erasure's hashes, by type."""
    found = {}
    for kind in IdentifierType:
        path = erasure_dir(home) / f"{erasure_id}-{kind.value}.parquet"
        if path.exists():
            found[kind] = path
    return found


class ErasedAtSend:
    """The global erased hashes, read again whenever the erasures folder changes: a run
    drops them from each batch of adds right before sending it, so a person erased after
    the run planned is not added by it (docs/privacy.md, "Erasure"). The list is small
    (at most a few hundred hashes per erasure, merged by the retention sweep)."""

    def __init__(self, home: Path) -> None:
        self._home = home
        self._stamp: int | None = None
        self._hashes: dict[IdentifierType, pa.Array] = {}

    def _refresh(self) -> None:
        try:
            stamp: int | None = erasure_dir(self._home).stat().st_mtime_ns
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return
        for _ in range(3):
            try:
                found: dict[IdentifierType, pa.Array] = {}
                for kind in IdentifierType:
                    paths = erasure_files(self._home, kind)
                    if paths:
                        arrays = [pq.read_table(p, columns=["hash"]).column(0) for p in paths]
                        found[kind] = pa.chunked_array(arrays, pa.string()).combine_chunks()
            except FileNotFoundError:
                continue  # merged by the retention sweep meanwhile: list again
            self._hashes, self._stamp = found, stamp
            return

    def drop(self, kind: IdentifierType, hashes: pa.Array) -> tuple[pa.Array, int]:
        """``hashes`` without the erased ones, and how many were dropped."""
        self._refresh()
        erased = self._hashes.get(kind)
        if erased is None or not len(erased) or not len(hashes):
            return hashes, 0
        keep = pc.invert(pc.fill_null(pc.is_in(hashes, value_set=erased), False))
        kept = hashes.filter(keep)
        return kept, len(hashes) - len(kept)


def distinct_count(paths: list[Path]) -> int:
    if not paths:
        return 0
    with duck.connect() as con:
        (number,) = con.execute(
            f"SELECT count(DISTINCT hash) FROM read_parquet({_sql_list(paths)})"
        ).fetchone() or (0,)
    return int(number)


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join(_quote(str(p)) for p in paths) + "]"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def applicable_files(ctx: Context, export_id: int) -> dict[IdentifierType, list[Path]]:
    """The hash files of every list that applies to the export, and of every erasure."""
    result: dict[IdentifierType, list[Path]] = {}
    with ctx.db.session() as session:
        linked = select(SuppressionListExport.list_id).where(
            SuppressionListExport.export_id == export_id
        )
        rows = session.execute(
            select(SuppressionList.id, SuppressionList.kind).where(
                or_(SuppressionList.all_exports.is_(True), SuppressionList.id.in_(linked))
            )
        ).all()
    for list_id, kind in rows:
        result.setdefault(IdentifierType(kind), []).extend(list_files(ctx.home, list_id))
    for kind in IdentifierType:
        result.setdefault(kind, []).extend(erasure_files(ctx.home, kind))
    return {kind: paths for kind, paths in result.items() if paths}


def with_exclusions(ctx: Context, run: RunInput, work: Path) -> RunInput:
    """``run`` with its exclusion files: per type, the suppressed hashes (lists and
    erasures, merged into one file in ``work``) and the normalized identifiers of the
    members without consent (written by :class:`ConsentSplit`)."""
    suppressed: dict[IdentifierType, Path] = {}
    for kind, paths in applicable_files(ctx, run.export_id).items():
        target = work / f"{SUPPRESSED}-{kind.value}.parquet"
        with duck.connect() as con:
            con.execute(
                f"COPY (SELECT DISTINCT hash FROM read_parquet({_sql_list(paths)})) "
                f"TO {_quote(str(target))} (FORMAT parquet, COMPRESSION uncompressed)"
            )
        suppressed[kind] = target
    withdrawn = {
        kind: work / f"{WITHDRAWN}-{kind.value}.parquet"
        for kind in run.fields
        if (work / f"{WITHDRAWN}-{kind.value}.parquet").exists()
    }
    return replace(run, suppressed=suppressed, withdrawn=withdrawn)


def exclusion_sql(run: RunInput, kind: IdentifierType) -> str | None:
    """A DuckDB query of the hashes a run must not hold for ``kind`` (None: no exclusion)."""
    parts = []
    if kind in run.suppressed:
        parts.append(f"SELECT hash FROM read_parquet({_quote(str(run.suppressed[kind]))})")
    if kind in run.withdrawn:
        path = _quote(str(run.withdrawn[kind]))
        parts.append(f"SELECT {HASH_SQL} AS hash FROM read_parquet({path})")
    return " UNION ALL ".join(parts) if parts else None


def suppressed_sql(run: RunInput, kind: IdentifierType) -> str | None:
    """The suppressed hashes alone (lists and erasures), for the ``suppressed`` count."""
    if kind not in run.suppressed:
        return None
    return f"SELECT hash FROM read_parquet({_quote(str(run.suppressed[kind]))})"


def consent_mask(column: pa.Array | pa.ChunkedArray, values: tuple[str, ...]) -> pa.Array:
    """Which rows hold consent: true in a boolean field, or (with ``values``) a value
    among ``values`` compared trimmed and in any case. A null is no consent."""
    if not values:
        if not pa.types.is_boolean(column.type):
            column = pc.cast(column, pa.bool_(), safe=False)
        return pc.fill_null(column, False)
    text = pc.utf8_lower(pc.utf8_trim_whitespace(pc.cast(column, pa.string())))
    wanted = pa.array(sorted({value.strip().lower() for value in values}), pa.string())
    return pc.fill_null(pc.is_in(text, value_set=wanted), False)


@dataclass
class ConsentSplit:
    """Takes the members without consent out of a member stream (see the module doc).

    Their identifiers are normalized like the others and written to
    ``withdrawn-<type>.parquet`` in the run's scratch folder; ``outcome.members`` counts
    them and ``outcome.no_consent`` says how many they were.
    """

    run: RunInput
    work: Path
    outcome: RunOutcome
    _writers: dict[IdentifierType, pq.ParquetWriter] = field(default_factory=dict)

    def filter(self, stream: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        name = self.run.consent_field
        if name is None:
            yield from stream
            return
        for batch in stream:
            mask = consent_mask(batch.column(name), self.run.consent_values)
            kept = int(pc.sum(pc.cast(mask, pa.int64())).as_py() or 0)
            without = batch.num_rows - kept
            if without:
                self.outcome.members += without
                self.outcome.no_consent += without
                self._withdraw(batch.filter(pc.invert(mask)))
            if kept:
                yield batch.filter(mask) if without else batch

    def _withdraw(self, batch: pa.RecordBatch) -> None:
        for kind, column in self.run.fields.items():
            prepared = prepare_batch(
                kind, batch.column(column), default_country=self.run.default_country
            )
            if not prepared.accepted:
                continue
            writer = self._writers.get(kind)
            if writer is None:
                path = self.work / f"{WITHDRAWN}-{kind.value}.parquet"
                writer = pq.ParquetWriter(path, PREPARED_SCHEMA, compression="none")
                self._writers[kind] = writer
            writer.write_table(prepared.rows)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def __enter__(self) -> ConsentSplit:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


#: erasure files of one type merged into one by the retention sweep from this many on.
MERGE_ERASURES_FROM = 32


def merge_erasure_files(home: Path, finished: Iterable[int]) -> int:
    """Fold the hash files of finished erasures into one file per type, so a run reads a
    few files rather than one per erasure; how many files were folded.

    The merged file is written whole (temporary name, fsync, rename) before the files it
    holds are deleted: a crash in between leaves hashes twice, which is harmless.
    """
    folded = 0
    ids = sorted(set(finished))
    for kind in IdentifierType:
        paths = [erasure_dir(home) / f"{i}-{kind.value}.parquet" for i in ids]
        paths = [path for path in paths if path.exists()]
        if len(paths) < MERGE_ERASURES_FROM:
            continue
        target = erasure_dir(home) / f"merged.{uuid.uuid4().hex}-{kind.value}.parquet"
        temporary = target.with_name(f".{target.name}.tmp")
        with duck.connect() as con:
            con.execute(
                f"COPY (SELECT DISTINCT hash FROM read_parquet({_sql_list(paths)})) "
                f"TO {_quote(str(temporary))} (FORMAT parquet, COMPRESSION zstd)"
            )
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
        temporary.replace(target)
        for path in paths:
            path.unlink(missing_ok=True)
        folded += len(paths)
    return folded


def remove_list_files(home: Path, list_id: int) -> None:
    shutil.rmtree(list_dir(home, list_id), ignore_errors=True)
