"""Profile datasets: import, refresh, list, schema, sample, remove.

A file dataset is one Parquet file under ``profiles/<name>/`` in the shared storage (the
home folder by default, ``audiencesync.storage``); its current key is recorded in the
control database. Files uploaded through the API or web UI are kept in the storage's
``uploads/`` too, so a refresh on any machine can read them again. An import writes a
new file first, checks it, then switches the record in one transaction: a failed import
leaves the previous data and the control database untouched, and readers (any process)
never wait on a lock because each query opens its own in-process DuckDB over immutable
files.
"""

from __future__ import annotations

import csv
import difflib
import errno
import logging
import re
import shutil
import time
import uuid
from collections.abc import Iterable
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
from audiencesync.errors import (
    AudiencesyncError,
    ConflictError,
    DiskFullError,
    Fix,
    NotFoundError,
    PermissionDeniedError,
    UserInputError,
)
from audiencesync.logs import redact
from audiencesync.profiles.formats import (
    FileFormat,
    ReadOptions,
    check_delimiter,
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
#: The kind of a dataset a unification writes (profiles/unify).
UNIFIED = "unified"
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
        raise UserInputError(
            f"unknown on_duplicate_key {value!r}: use one of {names}.", field="on_duplicate_key"
        ) from None


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


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def _duckdb_message(error: duckdb.Error) -> str:
    # DuckDB quotes offending lines and values: keep the first sentence, drop quotes.
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return redact(_QUOTED.sub("(a value)", first))[:300]


def _dataset_key(name: str) -> str:
    return f"profiles/{name}"


def _get(session: Session, name: str) -> Dataset:
    row = session.scalar(select(Dataset).where(Dataset.name == name))
    if row is None:
        raise NotFoundError(
            f"there is no profile dataset named {name!r}.", fix=Fix("list", "profiles")
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


def check_import_folder(ctx: Context, path: Path) -> None:
    """Refuse a server-side path outside the folders in AUDIENCESYNC_IMPORT_FOLDERS.

    For imports by path through the API or web UI (anyone with the contributor role could
    otherwise read any file the server can); the CLI, run as the local user, skips it.
    """
    folders = ctx.settings.import_folder_paths
    resolved = path.expanduser().resolve()
    if not any(resolved.is_relative_to(folder) for folder in folders):
        where = (
            "no folder is set"
            if not folders
            else "it is not inside " + ", ".join(map(str, folders))
        )
        raise PermissionDeniedError(
            "the server imports files by path only from the folders listed in "
            f"AUDIENCESYNC_IMPORT_FOLDERS ({where}): upload the file instead, or ask the "
            "administrator to list its folder."
        )


def _upload_folder(ctx: Context, source: str) -> str | None:
    """The storage key of an uploaded source file's folder, or None for a file the user
    pointed at."""
    key = ctx.storage.key_of(source)
    if key is None:
        return None
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == UPLOADS:
        return "/".join(parts[:2])
    return None


def _local_upload(ctx: Context, source: Path) -> str | None:
    """``uploads/<folder>/<name>`` for a file just uploaded into ``<home>/uploads``."""
    uploads = (ctx.home / UPLOADS).resolve()
    if source.is_relative_to(uploads) and source.parent.parent == uploads:
        return source.relative_to(ctx.home.resolve()).as_posix()
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
    created = not target_dir.exists()
    target_dir.mkdir(parents=True, exist_ok=True)
    scratch = target_dir / f".import-{uuid.uuid4().hex}"
    scratch.mkdir()
    try:
        return _prepare_in(source, key, options, on_duplicate, target_dir, scratch)
    except BaseException as error:
        if created:  # a failed first import leaves no empty profiles/<name>/ behind
            shutil.rmtree(target_dir, ignore_errors=True)
        if _no_space(error):
            # Not "could not be read": the file is fine, the home's disk is full.
            raise DiskFullError(
                f"the disk holding the home folder is full (no space left while importing "
                f"{source.name}): free some space, then import again; nothing was changed."
            ) from None
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _no_space(error: BaseException) -> bool:
    """Whether ``error`` says the disk is full (an OSError, or DuckDB's own words)."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    return isinstance(error, duckdb.Error) and "no space left on device" in str(error).lower()


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
            if _no_space(error):
                raise
            encoding = options.format is FileFormat.CSV and "unicode" in str(error).lower()
            hint = (
                " If it is not UTF-8, give its encoding (for example latin-1 or cp1252)."
                if encoding
                else ""
            )
            raise UserInputError(
                f"{source.name} could not be read as {options.format.value}: "
                f"{_duckdb_message(error)}.{hint}",
                field="encoding" if encoding else None,
            ) from None

        scan = f"read_parquet('{raw}', file_row_number = true)"
        described = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{raw}')").fetchall()
        columns = [{"name": str(r[0]), "type": str(r[1])} for r in described]
        names = [c["name"] for c in columns]
        _check_columns(source, names, key, readable=readable, options=options)
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
            # Row numbers, not the key values: the file's values are never quoted back.
            examples = [
                " and ".join(str(int(n) + 1) for n in r[0])
                for r in con.execute(
                    f"SELECT list_slice(list(file_row_number ORDER BY file_row_number), 1, 2) "
                    f"FROM {scan} GROUP BY {qkey} HAVING count(*) > 1 "
                    f"ORDER BY min(file_row_number) LIMIT {_MAX_EXAMPLES}"
                ).fetchall()
            ]
            raise UserInputError(
                f"{duplicate_keys} key value(s) in column {key!r} appear on more than one row "
                f"(for example data rows {'; '.join(examples)}): fix the file, or keep the "
                "first or the last row of each key.",
                field="on_duplicate_key",
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


def _check_columns(
    source: Path,
    names: list[str],
    key: str,
    *,
    readable: Path | None = None,
    options: ReadOptions | None = None,
) -> None:
    for name in names:
        if name.lower() in RESERVED_NAMES or name.lower().startswith(RESERVED_PREFIX):
            shown = repr(name) if _look_like_names([name]) else "a column"
            raise UserInputError(
                f"{shown} of {source.name} uses a name audiencesync reserves "
                f"(names starting with {RESERVED_PREFIX!r}, and "
                f"{', '.join(sorted(RESERVED_NAMES))}): rename that column."
            )
    if key not in names:
        if not _look_like_names(names):
            # The first line is data (or the delimiter was not found): quote none of it.
            ragged = None
            if readable is not None and options is not None and options.format is FileFormat.CSV:
                ragged = _ragged_row(readable, options)
            if ragged is not None:
                line, found, expected = ragged
                raise UserInputError(
                    f"{source.name}: line {line} has {found} field(s) where the first line "
                    f"has {expected}, so the columns (and the key {key!r}) cannot be read: "
                    "fix that row (or quote the value that holds the delimiter), or give the "
                    "delimiter.",
                    field="delimiter",
                )
            raise UserInputError(
                f"{source.name} has no column {key!r} to use as the key, and the first line "
                f"does not look like column names ({len(names)} column(s) found): make the "
                "first line name the columns, or give the delimiter.",
                field="delimiter",
            )
        raise UserInputError(
            f"{source.name} has no column {key!r} to use as the key: {closest(key, names)}.",
            field="key",
        )


#: What a column name looks like: letters, digits, '_', ' ', '.', '-', starting with a
#: letter or '_'. A first line with anything else is data, and is never quoted back.
_NAME_LIKE = re.compile(r"^[A-Za-z_][A-Za-z0-9_ .-]{0,63}$")
#: How many lines a ragged-row search reads at most.
_MAX_RAGGED_LINES = 1_000_000


#: The one-character delimiter a longer one stands as for csv (ASCII "unit separator").
_STAND_IN = "\x1f"


def _look_like_names(names: list[str]) -> bool:
    """Whether column names look like a header rather than a row of data."""
    return all(_NAME_LIKE.match(n) and redact(n) == n for n in names)


def _ragged_row(path: Path, options: ReadOptions) -> tuple[int, int, int] | None:
    """``(line, fields, expected)`` of the first CSV row whose field count differs from
    the first line's, or None (read at most :data:`_MAX_RAGGED_LINES` lines)."""
    try:
        with path.open(encoding="utf-8", errors="replace", newline="") as handle:
            first = handle.readline()
            delimiter = options.delimiter or max(",;\t|", key=first.count)
            handle.seek(0)
            lines: Iterable[str] = handle
            if len(delimiter) != 1:
                # csv splits on one character; DuckDB on up to four bytes ("ab", "éé"):
                # count fields on a stand-in (quoted values keep theirs as data).
                lines = (line.replace(delimiter, _STAND_IN) for line in handle)
                delimiter = _STAND_IN
            reader = csv.reader(lines, delimiter=delimiter)
            expected = None
            for number, row in enumerate(reader, start=1):
                if number > _MAX_RAGGED_LINES:
                    return None
                if expected is None:
                    expected = len(row)
                elif row and len(row) != expected:
                    return reader.line_num, len(row), expected
    except (OSError, csv.Error):
        return None
    return None


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
        delimiter=check_delimiter(delimiter),
        encoding=normalize_encoding(encoding),
    )
    if delimiter is not None and options.format is not FileFormat.CSV:
        raise UserInputError("a delimiter applies to CSV files only.", field="delimiter")
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
    recorded_source: str | None = None,
) -> DatasetView:
    with ctx.db.session() as session:
        existing = session.scalar(select(Dataset).where(Dataset.name == dataset))
        if existing is not None and existing.kind != "file":
            what = "a unified dataset" if existing.kind == UNIFIED else "a linked table"
            raise ConflictError(
                f"{dataset!r} is {what}, not an imported file: choose another name.",
                field="dataset",
            )
    started = time.perf_counter()
    storage = ctx.storage
    folder = _dataset_key(dataset)
    directory = storage.local_path(folder)
    recorded = str(source) if recorded_source is None else recorded_source
    # A file uploaded into this home goes to the storage too (unless the storage is this
    # home), where a refresh on any machine finds it again.
    at_home = storage.local_path("") == ctx.home.resolve()
    upload = None if at_home else _local_upload(ctx, source)
    try:
        if directory is None:
            # Object storage: prepared on this machine's disk, then uploaded whole.
            work = ctx.home / "scratch" / "imports" / uuid.uuid4().hex
            try:
                prepared = _prepare(source, key, options, on_duplicate, work)
                data_key = f"{folder}/{prepared.path.name}"
                storage.put_file(prepared.path, data_key, move=True)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        else:
            prepared = _prepare(source, key, options, on_duplicate, directory)
            data_key = f"{folder}/{prepared.path.name}"
    except Exception:
        # Removed meanwhile, its folder with it: that, not an IO or "could not be read"
        # error about a scratch file the removal took away.
        if existing is not None and (gone := vanished(ctx, dataset, None)) is not None:
            raise gone from None
        raise
    if upload is not None:
        try:
            storage.put_file(source, upload)
        except BaseException:
            storage.delete(data_key)
            raise
        recorded = storage.location(upload)
    try:
        with ctx.db.session() as session:
            row = session.scalar(select(Dataset).where(Dataset.name == dataset))
            before = None if row is None else _audit_state(row)
            if row is None and existing is not None:
                # Removed while this version was written (its folder, and maybe this
                # file, deleted): not brought back half-made.
                raise _removed_error(dataset)
            if row is None:
                row = Dataset(name=dataset, kind="file", version=0)
                session.add(row)
            previous = row.data_path
            previous_upload = _upload_folder(ctx, row.source) if row.source else None
            row.key_column = key
            row.source = recorded
            row.options = _options_dict(options, key, on_duplicate)
            row.data_path = data_key
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
        storage.delete(data_key)
        if upload is not None and recorded != str(source):
            storage.delete_tree(upload.rsplit("/", 1)[0])
        if directory is not None and directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
        raise
    _prune(ctx, folder, keep={prepared.path.name, Path(previous).name if previous else ""})
    if previous_upload is not None and previous_upload != _upload_folder(ctx, recorded):
        storage.delete_tree(previous_upload)  # the file it replaced
    if upload is not None and recorded != str(source):
        shutil.rmtree(source.parent, ignore_errors=True)  # kept in the storage now
    log.info(
        "dataset %s: %d rows imported in %.2fs",
        dataset,
        prepared.row_count,
        time.perf_counter() - started,
    )
    return view


#: Superseded versions younger than this stay on disk for readers that resolved them.
READER_GRACE_SECONDS = 600


def _prune(ctx: Context, folder: str, keep: set[str]) -> None:
    # The previous version, and any version replaced in the last few minutes, stay in
    # storage so a reader (another process) that looked up its key before the switch can
    # still read it to the end.
    cutoff = time.time() - READER_GRACE_SECONDS
    for entry in ctx.storage.listing(folder):
        if not entry.name.endswith(".parquet") or entry.name in keep:
            continue
        if entry.modified < cutoff:
            ctx.storage.delete(entry.key)


def _audit_state(row: Dataset) -> dict[str, Any]:
    return {
        "source": row.source,
        "key": row.key_column,
        "rows": row.row_count,
        "columns": len(row.columns or []),
        "version": row.version,
    }


def refresh(ctx: Context, actor: Actor, name: str, *, check_folders: bool = False) -> DatasetView:
    """Re-import dataset ``name`` from the source and options it was imported with.

    ``check_folders``: the refresh is asked for through the API or web UI, so a file
    imported by path is read again only while it (links followed) is inside
    AUDIENCESYNC_IMPORT_FOLDERS, as an import by path there is (PermissionDeniedError):
    a file later replaced by a link to a secret, or a folder no longer listed, is not
    read. The CLI (the local user) and the scheduler leave it off.
    """
    require(actor, Action.EDIT_DATASETS)
    with ctx.db.session() as session:
        row = _get(session, check_dataset_name(name))
        if row.kind == UNIFIED:
            from audiencesync.profiles.unify import service as unify  # builds on this module

            unify.refresh(ctx, actor, row.name)
            return get_dataset(ctx, actor, row.name)
        if row.kind != "file":
            from audiencesync.profiles import linked  # linked builds on this module

            return linked.refresh_link(ctx, actor, row.name)
        options = dict(row.options)
        recorded = row.source
        key = row.key_column
    read = ReadOptions(
        format=FileFormat(options["format"]),
        delimiter=options.get("delimiter"),
        encoding=options.get("encoding"),
    )
    on_duplicate = OnDuplicateKey(options.get("on_duplicate_key", "error"))
    stored = None if ctx.storage.is_local else ctx.storage.key_of(recorded)
    if stored is None:
        source = Path(recorded)
        if _upload_folder(ctx, recorded) is None:  # a file the user pointed at
            # Read where the checks looked: a link swapped in after them is not followed.
            source = source.resolve()
            check_outside_home(ctx, source)
            if check_folders:
                check_import_folder(ctx, source)
        return _load(
            ctx, actor, row.name, source, key, read, on_duplicate,
            action="refresh", recorded_source=recorded,
        )  # fmt: skip
    # An upload kept in object storage: read again from a local copy.
    work = ctx.home / "scratch" / "imports" / uuid.uuid4().hex
    work.mkdir(parents=True)
    try:
        source = work / stored.rsplit("/", 1)[-1]
        try:
            ctx.storage.get_file(stored, source)
        except FileNotFoundError:
            raise UserInputError(
                f"the uploaded file of dataset {row.name!r} is no longer in the storage: "
                "upload it again."
            ) from None
        return _load(
            ctx, actor, row.name, source, key, read, on_duplicate,
            action="refresh", recorded_source=recorded,
        )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


def refresh_all(ctx: Context, actor: Actor) -> list[DatasetView]:
    """Refresh every imported dataset (linked tables are always current), then every
    unified dataset, which reads them."""
    views = [refresh(ctx, actor, d.name) for d in list_datasets(ctx, actor) if d.kind == "file"]
    return views + [
        refresh(ctx, actor, d.name) for d in list_datasets(ctx, actor) if d.kind == UNIFIED
    ]


def list_datasets(ctx: Context, actor: Actor) -> list[DatasetView]:
    require(actor, Action.READ)
    with ctx.db.session() as session:
        return [_view(r) for r in session.scalars(select(Dataset).order_by(Dataset.name))]


def get_dataset(ctx: Context, actor: Actor, name: str) -> DatasetView:
    require(actor, Action.READ)
    with ctx.db.session() as session:
        return _view(_get(session, check_dataset_name(name)))


def parquet_key(ctx: Context, name: str) -> str:
    """The storage key of an imported dataset's current Parquet file (for readers in the
    engine: ``ctx.storage.scan`` or ``ctx.storage.dataset``)."""
    with ctx.db.session() as session:
        row = _get(session, check_dataset_name(name))
        if row.kind not in ("file", UNIFIED) or row.data_path is None:
            raise ConflictError(f"dataset {name!r} is a linked table, not a Parquet file.")
        return row.data_path


def sample(ctx: Context, actor: Actor, name: str, *, limit: int = 20) -> pa.Table:
    """The first ``limit`` rows of a dataset (imported or linked) as an Arrow table."""
    require(actor, Action.READ)
    if limit < 0:
        raise UserInputError("the number of rows must be zero or more.", field="limit")
    with ctx.db.session() as session:
        kind = _get(session, check_dataset_name(name)).kind
    if kind not in ("file", UNIFIED):
        from audiencesync.profiles import linked  # linked builds on this module

        return linked.sample_link(ctx, check_dataset_name(name), limit=limit)
    for attempt in range(3):
        data = parquet_key(ctx, name)
        con = duck.connect()
        try:
            scan = ctx.storage.scan(con, data)
            return con.execute(f"SELECT * FROM {scan} LIMIT ?", [limit]).to_arrow_table()
        except (duckdb.IOException, duckdb.InvalidInputException, FileNotFoundError):
            # Replaced and pruned between the lookup and the read: look it up again.
            if attempt == 2 or parquet_key(ctx, name) == data:
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
        from audiencesync.control.models import Unification
        from audiencesync.profiles.unify import service as unify  # builds on this module

        unifications = unify.sources_using(session, row.id)
        if unifications:
            raise ConflictError(
                f"dataset {dataset!r} is a source of unification(s) {', '.join(unifications)}.",
                fix=Fix("remove_unification"),
            )
        if row.kind == UNIFIED:
            for unification in session.scalars(
                select(Unification).where(Unification.name == dataset)
            ):
                session.delete(unification)
        audit.record(
            session, actor, "dataset.remove", f"dataset:{dataset}", before=_audit_state(row)
        )
        upload = _upload_folder(ctx, row.source)
        session.delete(row)
    ctx.storage.delete_tree(_dataset_key(dataset))
    if upload is not None:  # uploaded profiles leave the storage with their dataset
        ctx.storage.delete_tree(upload)
    shutil.rmtree(ctx.home / "unified" / dataset, ignore_errors=True)


def _removed_error(name: str) -> NotFoundError:
    return NotFoundError(
        f"dataset {name!r} was removed while it was being read or written: nothing was "
        "changed; import it again if you still need it.",
        fix=Fix("list", "profiles"),
    )


def vanished(ctx: Context, name: str, data_key: str | None) -> AudiencesyncError | None:
    """Why dataset ``name``'s files could not be read or written, when it was removed
    (NotFoundError) or given a new version (ConflictError, when ``data_key`` is the file
    the reader looked up) meanwhile; None when it is still there as it was, so the
    failure has another cause.

    For readers and writers that hit an IO error on a dataset's files: a dataset removed
    at the same moment is a sentence (404 or 409), never a server error.
    """
    with ctx.db.session() as session:
        row = session.scalar(select(Dataset).where(Dataset.name == name))
        if row is None:
            return _removed_error(name)
        if data_key is not None and row.data_path != data_key:
            return ConflictError(
                f"dataset {name!r} was refreshed while it was being read: try again."
            )
    return None


def dataset_users(session: Session, dataset_id: int) -> list[str]:
    """Names of the segments defined over a dataset."""
    return list(
        session.scalars(
            select(Segment.name).where(Segment.dataset_id == dataset_id).order_by(Segment.name)
        )
    )
