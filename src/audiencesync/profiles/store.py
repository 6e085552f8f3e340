"""Profile datasets: import, refresh, list, schema, sample, remove.

A file dataset is one Parquet file under ``<home>/profiles/<name>/``; its current path is
recorded in the control database. An import writes a new file first, checks it, then
switches the record in one transaction: a failed import leaves the previous data and the
control database untouched, and readers (any process) never wait on a lock because each
query opens its own in-process DuckDB over immutable files.
"""

from __future__ import annotations

import difflib
import logging
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.orm import Session

from audiencesync import duck
from audiencesync.control import audit
from audiencesync.control.context import Context
from audiencesync.control.models import Dataset, Segment, utcnow
from audiencesync.control.permissions import Action, Actor, require
from audiencesync.errors import ConflictError, NotFoundError, UserInputError
from audiencesync.logs import redact
from audiencesync.profiles.formats import (
    FileFormat,
    ReadOptions,
    detect_format,
    normalize_encoding,
    reader_sql,
    transcode_if_needed,
)

log = logging.getLogger(__name__)

#: Columns the product adds to query results use this prefix, so sources may not.
RESERVED_PREFIX = "_as_"
#: DuckDB's row-number column, used to keep file order when de-duplicating.
RESERVED_NAMES = frozenset({"file_row_number"})
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
_MAX_EXAMPLES = 5


class OnDuplicateKey(StrEnum):
    ERROR = "error"
    FIRST = "first"
    LAST = "last"


def parse_on_duplicate_key(value: str) -> OnDuplicateKey:
    """The duplicate-key policy named by ``value``, or a UserInputError listing them."""
    try:
        return OnDuplicateKey(value.strip().lower())
    except ValueError:
        names = ", ".join(p.value for p in OnDuplicateKey)
        raise UserInputError(f"unknown on_duplicate_key {value!r}: use one of {names}.") from None


@dataclass(frozen=True)
class Column:
    name: str
    type: str


@dataclass(frozen=True)
class DatasetView:
    name: str
    kind: str
    key_column: str
    source: str
    row_count: int
    columns: tuple[Column, ...]
    imported_at: datetime | None
    imported_by: str | None
    options: dict[str, Any]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _view(row: Dataset) -> DatasetView:
    return DatasetView(
        name=row.name,
        kind=row.kind,
        key_column=row.key_column,
        source=row.source,
        row_count=row.row_count,
        columns=tuple(Column(c["name"], c["type"]) for c in row.columns),
        imported_at=row.imported_at,
        imported_by=row.imported_by,
        options=dict(row.options),
    )


def check_dataset_name(name: str) -> str:
    """``name`` lower-cased, or a UserInputError saying what a name may hold."""
    lowered = name.strip().lower()
    if not _NAME.match(lowered):
        raise UserInputError(
            f"{name!r} is not a valid dataset name: use letters, digits, '_' or '-', "
            "starting with a letter or digit, at most 100 characters."
        )
    return lowered


def default_dataset_name(path: Path) -> str:
    """A dataset name derived from a file name (``Customers 2026.csv`` -> ``customers_2026``)."""
    stem = path.name.split(".")[0].lower()
    cleaned = re.sub(r"[^a-z0-9_-]+", "_", stem).strip("_-") or "profiles"
    return cleaned[:100]


def closest(name: str, candidates: list[str]) -> str:
    """A phrase naming the candidates closest to ``name``, or listing a few of them."""
    near = difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)
    if not near:
        near = difflib.get_close_matches(name.lower(), [c.lower() for c in candidates], n=3)
    shown = near or candidates[:8]
    label = "did you mean" if near else "columns are"
    return f"{label} {', '.join(shown)}{'' if near or len(candidates) <= 8 else ', ...'}"


def _duckdb_message(error: duckdb.Error) -> str:
    # DuckDB quotes offending lines; keep only the first sentence and redact values.
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return redact(first)[:300]


def _dataset_dir(ctx: Context, name: str) -> Path:
    return ctx.home / "profiles" / name


def _get(session: Session, name: str) -> Dataset:
    row = session.scalar(select(Dataset).where(Dataset.name == name))
    if row is None:
        raise NotFoundError(
            f"there is no profile dataset named {name!r}: see `audiencesync profiles list`."
        )
    return row


@dataclass(frozen=True)
class _Prepared:
    """A checked Parquet file ready to become a dataset's current version."""

    path: Path
    row_count: int
    columns: list[dict[str, str]]
    duplicates_dropped: int


UPLOADS = "uploads"


def check_outside_home(ctx: Context, path: Path) -> None:
    """Refuse a source inside the home folder (it holds the key file and the control
    database), except files uploaded through the web UI or API into ``<home>/uploads``."""
    home = ctx.home.resolve()
    resolved = path.resolve()
    if resolved.is_relative_to(home) and not resolved.is_relative_to(home / UPLOADS):
        raise UserInputError(
            f"{path} is inside audiencesync's home folder, which holds its keys and control "
            "database: import profiles from a file elsewhere."
        )


def _upload_folder(ctx: Context, source: str) -> Path | None:
    """The folder of an uploaded source file, or None for a file the user pointed at."""
    path = Path(source)
    uploads = (ctx.home / UPLOADS).resolve()
    if path.is_relative_to(uploads) and path.parent != uploads:
        return path.parent
    return None


def _check_source(source: Path) -> None:
    if not source.exists():
        raise UserInputError(f"{source} does not exist: check the path.")
    if source.is_dir():
        raise UserInputError(f"{source} is a folder, not a file: give the path of one file.")
    try:
        with source.open("rb") as handle:
            first = handle.read(1)
    except OSError as error:
        raise UserInputError(
            f"{source} cannot be read ({error.strerror}): check its permissions."
        ) from None
    if not first:
        raise UserInputError(f"{source} is empty: export the profiles again and retry.")


def _prepare(
    source: Path, key: str, options: ReadOptions, on_duplicate: OnDuplicateKey, target_dir: Path
) -> _Prepared:
    """Read ``source`` into a new Parquet file in ``target_dir`` and check it."""
    _check_source(source)
    target_dir.mkdir(parents=True, exist_ok=True)
    scratch = target_dir / f".import-{uuid.uuid4().hex}"
    scratch.mkdir()
    try:
        return _prepare_in(source, key, options, on_duplicate, target_dir, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _prepare_in(
    source: Path,
    key: str,
    options: ReadOptions,
    on_duplicate: OnDuplicateKey,
    target_dir: Path,
    scratch: Path,
) -> _Prepared:
    readable = transcode_if_needed(source, options, scratch)
    raw = scratch / "raw.parquet"
    con = duck.connect(preserve_insertion_order=True)
    try:
        expression, params = reader_sql(readable, options)
        try:
            con.execute(
                f"COPY (SELECT * FROM {expression}) TO '{raw}' (FORMAT parquet, COMPRESSION zstd)",
                params,
            )
        except duckdb.Error as error:
            hint = (
                " If it is not UTF-8, pass --encoding (for example latin-1 or cp1252)."
                if options.format is FileFormat.CSV and "unicode" in str(error).lower()
                else ""
            )
            raise UserInputError(
                f"{source.name} could not be read as {options.format.value}: "
                f"{_duckdb_message(error)}.{hint}"
            ) from None

        scan = f"read_parquet('{raw}', file_row_number = true)"
        described = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{raw}')").fetchall()
        columns = [{"name": str(r[0]), "type": str(r[1])} for r in described]
        names = [c["name"] for c in columns]
        _check_columns(source, names, key)
        qkey = _quote(key)

        total, nulls, first_null = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE {qkey} IS NULL), "
            f"min(file_row_number) FILTER (WHERE {qkey} IS NULL) FROM {scan}"
        ).fetchone() or (0, 0, None)
        if total == 0:
            raise UserInputError(
                f"{source.name} has column names but no rows: export the profiles again."
            )
        if nulls:
            raise UserInputError(
                f"{nulls} row(s) of {source.name} have no value in key column {key!r} "
                f"(the first is data row {int(first_null) + 1}): fill the key or remove those rows."
            )

        duplicate_keys, duplicate_rows = con.execute(
            f"SELECT count(*), coalesce(sum(n) - count(*), 0) FROM "
            f"(SELECT count(*) AS n FROM {scan} GROUP BY {qkey} HAVING count(*) > 1)"
        ).fetchone() or (0, 0)
        final = target_dir / f"{uuid.uuid4().hex}.parquet"
        if duplicate_keys and on_duplicate is OnDuplicateKey.ERROR:
            examples = [
                str(r[0])
                for r in con.execute(
                    f"SELECT {qkey} FROM {scan} GROUP BY {qkey} HAVING count(*) > 1 "
                    f"ORDER BY min(file_row_number) LIMIT {_MAX_EXAMPLES}"
                ).fetchall()
            ]
            raise UserInputError(
                f"{duplicate_keys} key value(s) in column {key!r} appear on more than one row "
                f"(for example {', '.join(examples)}): fix the file, or pass "
                "--on-duplicate-key first|last to keep one row per key."
            )
        if duplicate_keys:
            direction = "ASC" if on_duplicate is OnDuplicateKey.FIRST else "DESC"
            con.execute(
                f"COPY (SELECT * EXCLUDE (file_row_number) FROM {scan} "
                f"QUALIFY row_number() OVER (PARTITION BY {qkey} "
                f"ORDER BY file_row_number {direction}) = 1 ORDER BY file_row_number) "
                f"TO '{final}' (FORMAT parquet, COMPRESSION zstd)"
            )
        else:
            raw.rename(final)
        return _Prepared(final, int(total) - int(duplicate_rows), columns, int(duplicate_rows))
    finally:
        con.close()


def _check_columns(source: Path, names: list[str], key: str) -> None:
    for name in names:
        if name.lower() in RESERVED_NAMES or name.lower().startswith(RESERVED_PREFIX):
            raise UserInputError(
                f"column {name!r} of {source.name} uses a name audiencesync reserves "
                f"(names starting with {RESERVED_PREFIX!r}, and "
                f"{', '.join(sorted(RESERVED_NAMES))}): rename that column."
            )
    if key not in names:
        raise UserInputError(
            f"{source.name} has no column {key!r} to use as the key: {closest(key, names)}."
        )


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _options_dict(options: ReadOptions, key: str, on_duplicate: OnDuplicateKey) -> dict[str, Any]:
    return {
        "format": options.format.value,
        "delimiter": options.delimiter,
        "encoding": options.encoding,
        "on_duplicate_key": on_duplicate.value,
        "key": key,
    }


def import_file(
    ctx: Context,
    actor: Actor,
    path: Path,
    *,
    key: str,
    name: str | None = None,
    file_format: FileFormat | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
    on_duplicate_key: OnDuplicateKey = OnDuplicateKey.ERROR,
) -> DatasetView:
    """Import ``path`` as dataset ``name``, replacing its previous version atomically.

    Raises UserInputError (bad file, key, columns), PermissionDeniedError, ConflictError
    (the name belongs to a linked table).
    """
    require(actor, Action.EDIT_DATASETS)
    source = path.expanduser().resolve()
    dataset = check_dataset_name(name) if name else default_dataset_name(source)
    check_outside_home(ctx, source)
    _check_source(source)
    options = ReadOptions(
        format=file_format or detect_format(source),
        delimiter=delimiter,
        encoding=normalize_encoding(encoding),
    )
    if delimiter is not None and options.format is not FileFormat.CSV:
        raise UserInputError("--delimiter applies to CSV files only.")
    return _load(ctx, actor, dataset, source, key, options, on_duplicate_key, action="import")


def _load(
    ctx: Context,
    actor: Actor,
    dataset: str,
    source: Path,
    key: str,
    options: ReadOptions,
    on_duplicate: OnDuplicateKey,
    *,
    action: str,
) -> DatasetView:
    with ctx.db.session() as session:
        existing = session.scalar(select(Dataset).where(Dataset.name == dataset))
        if existing is not None and existing.kind != "file":
            raise ConflictError(
                f"{dataset!r} is a linked table, not an imported file: choose another --name."
            )
    started = time.perf_counter()
    directory = _dataset_dir(ctx, dataset)
    prepared = _prepare(source, key, options, on_duplicate, directory)
    try:
        with ctx.db.session() as session:
            row = session.scalar(select(Dataset).where(Dataset.name == dataset))
            before = None if row is None else _audit_state(row)
            if row is None:
                row = Dataset(name=dataset, kind="file", version=0)
                session.add(row)
            previous = row.data_path
            previous_upload = _upload_folder(ctx, row.source) if row.source else None
            row.key_column = key
            row.source = str(source)
            row.options = _options_dict(options, key, on_duplicate)
            row.data_path = str(prepared.path.relative_to(ctx.home))
            row.version = (row.version or 0) + 1
            row.row_count = prepared.row_count
            row.columns = prepared.columns
            row.imported_at = utcnow()
            row.imported_by = actor.name
            after = _audit_state(row)
            after["duplicates_dropped"] = prepared.duplicates_dropped
            audit.record(
                session,
                actor,
                f"dataset.{action}",
                f"dataset:{dataset}",
                before=before,
                after=after,
            )
            session.flush()
            view = _view(row)
    except BaseException:
        prepared.path.unlink(missing_ok=True)
        raise
    _prune(directory, keep={prepared.path.name, Path(previous).name if previous else ""})
    if previous_upload is not None and previous_upload != _upload_folder(ctx, str(source)):
        shutil.rmtree(previous_upload, ignore_errors=True)  # the file it replaced
    log.info(
        "dataset %s: %d rows imported in %.2fs",
        dataset,
        prepared.row_count,
        time.perf_counter() - started,
    )
    return view


#: Superseded versions younger than this stay on disk for readers that resolved them.
READER_GRACE_SECONDS = 600


def _prune(directory: Path, keep: set[str]) -> None:
    # The previous version, and any version replaced in the last few minutes, stay on disk
    # so a reader (another process) that looked up its path before the switch can still
    # read it to the end.
    cutoff = time.time() - READER_GRACE_SECONDS
    for candidate in directory.glob("*.parquet"):
        if candidate.name in keep:
            continue
        try:
            if candidate.stat().st_mtime < cutoff:
                candidate.unlink(missing_ok=True)
        except FileNotFoundError:
            continue


def _audit_state(row: Dataset) -> dict[str, Any]:
    return {
        "source": row.source,
        "key": row.key_column,
        "rows": row.row_count,
        "columns": len(row.columns or []),
        "version": row.version,
    }


def refresh(ctx: Context, actor: Actor, name: str) -> DatasetView:
    """Re-import dataset ``name`` from the source and options it was imported with."""
    require(actor, Action.EDIT_DATASETS)
    with ctx.db.session() as session:
        row = _get(session, check_dataset_name(name))
        if row.kind != "file":
            from audiencesync.profiles import linked  # linked builds on this module

            return linked.refresh_link(ctx, actor, row.name)
        options = dict(row.options)
        source = Path(row.source)
        key = row.key_column
    read = ReadOptions(
        format=FileFormat(options["format"]),
        delimiter=options.get("delimiter"),
        encoding=options.get("encoding"),
    )
    on_duplicate = OnDuplicateKey(options.get("on_duplicate_key", "error"))
    return _load(ctx, actor, row.name, source, key, read, on_duplicate, action="refresh")


def refresh_all(ctx: Context, actor: Actor) -> list[DatasetView]:
    """Refresh every imported dataset (linked tables are always current)."""
    return [refresh(ctx, actor, d.name) for d in list_datasets(ctx, actor) if d.kind == "file"]


def list_datasets(ctx: Context, actor: Actor) -> list[DatasetView]:
    require(actor, Action.READ)
    with ctx.db.session() as session:
        return [_view(r) for r in session.scalars(select(Dataset).order_by(Dataset.name))]


def get_dataset(ctx: Context, actor: Actor, name: str) -> DatasetView:
    require(actor, Action.READ)
    with ctx.db.session() as session:
        return _view(_get(session, check_dataset_name(name)))


def parquet_path(ctx: Context, name: str) -> Path:
    """The current Parquet file of an imported dataset (for readers in the engine)."""
    with ctx.db.session() as session:
        row = _get(session, check_dataset_name(name))
        if row.kind != "file" or row.data_path is None:
            raise ConflictError(f"dataset {name!r} is a linked table, not a Parquet file.")
        return ctx.home / row.data_path


def sample(ctx: Context, actor: Actor, name: str, *, limit: int = 20) -> pa.Table:
    """The first ``limit`` rows of a dataset (imported or linked) as an Arrow table."""
    require(actor, Action.READ)
    if limit < 0:
        raise UserInputError("--limit must be zero or more.")
    with ctx.db.session() as session:
        kind = _get(session, check_dataset_name(name)).kind
    if kind != "file":
        from audiencesync.profiles import linked  # linked builds on this module

        return linked.sample_link(ctx, check_dataset_name(name), limit=limit)
    for attempt in range(3):
        path = parquet_path(ctx, name)
        con = duck.connect()
        try:
            return con.execute(
                "SELECT * FROM read_parquet(?) LIMIT ?", [str(path), limit]
            ).to_arrow_table()
        except duckdb.IOException:
            # Replaced and pruned between the lookup and the read: look it up again.
            if attempt == 2 or parquet_path(ctx, name) == path:
                raise
        finally:
            con.close()
    raise AssertionError("unreachable")


def remove(ctx: Context, actor: Actor, name: str) -> None:
    """Remove a dataset and its files. Segments over it must be removed first."""
    require(actor, Action.EDIT_DATASETS)
    dataset = check_dataset_name(name)
    with ctx.db.session() as session:
        row = _get(session, dataset)
        users = dataset_users(session, row.id)
        if users:
            raise ConflictError(
                f"dataset {dataset!r} is used by segment(s) {', '.join(users)}: "
                "remove or move those segments first."
            )
        audit.record(
            session, actor, "dataset.remove", f"dataset:{dataset}", before=_audit_state(row)
        )
        upload = _upload_folder(ctx, row.source)
        session.delete(row)
    shutil.rmtree(_dataset_dir(ctx, dataset), ignore_errors=True)
    if upload is not None:  # uploaded profiles leave the disk with their dataset
        shutil.rmtree(upload, ignore_errors=True)


def dataset_users(session: Session, dataset_id: int) -> list[str]:
    """Names of the segments defined over a dataset."""
    return list(
        session.scalars(
            select(Segment.name).where(Segment.dataset_id == dataset_id).order_by(Segment.name)
        )
    )
