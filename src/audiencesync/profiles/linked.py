"""Linked datasets: a table in PostgreSQL (or another Ibis engine) used in place.

``audiencesync profiles link NAME --url URL --table T --key K`` registers the table as a
dataset of kind ``link``. Its segments run there, where the data is; only members' keys
and mapped fields come back. The URL may hold a password, so it is stored encrypted with
the home's key and shown redacted. The columns are read from the table at link time and
again whenever the table is opened, so a changed table is noticed on use.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pyarrow as pa
from ibis.backends.sql.datatypes import DuckDBType
from ibis.common.exceptions import TableNotFound
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from audiencesync.control import audit
from audiencesync.control.context import Context
from audiencesync.control.models import Dataset, Role, utcnow
from audiencesync.control.permissions import Action, Actor, require
from audiencesync.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    UserInputError,
)
from audiencesync.logs import redact
from audiencesync.profiles.store import (
    RESERVED_NAMES,
    RESERVED_PREFIX,
    DatasetView,
    _view,
    check_dataset_name,
    closest,
)

log = logging.getLogger(__name__)

LINK = "link"


def redacted_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (what lists and logs may show)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "[unreadable URL]"


def _engine_url(url: str) -> str:
    # SQLAlchemy-style URLs name a driver (postgresql+psycopg://); Ibis wants the engine.
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise UserInputError("--url must look like postgresql://user:password@host:5432/database.")
    return f"{scheme.split('+', 1)[0]}://{rest}"


#: Engines anyone who may edit datasets can link: a database server, not a local file.
SERVER_SCHEMES = frozenset({"postgresql", "postgres"})
#: Engines that read a file on this machine; never one inside the home folder.
FILE_SCHEMES = frozenset({"sqlite", "duckdb"})


def check_link_url(ctx: Context, actor: Actor, url: str) -> None:
    """Refuse links that could read audiencesync's own files, or other engines for
    non-administrators (a contributor could otherwise read any file the server can)."""
    scheme = url.partition("://")[0].split("+", 1)[0].lower()
    if scheme not in SERVER_SCHEMES and actor.role is not Role.ADMIN:
        raise PermissionDeniedError(
            f"{actor.name} is a {actor.role.value} and can link PostgreSQL tables only; "
            "ask an administrator to link other engines."
        )
    if scheme in FILE_SCHEMES:
        location = url.partition("://")[2].lstrip("/")
        path = Path("/" + location.split("?", 1)[0]) if location else ctx.home
        if path.resolve().is_relative_to(ctx.home.resolve()):
            raise UserInputError(
                "that file is inside audiencesync's home folder, which holds its keys and "
                "control database: link a table from elsewhere."
            )


def connect(url: str) -> Any:
    """An Ibis backend for ``url``; UserInputError with one sentence when it fails."""
    shown = redacted_url(url)
    try:
        return ibis.connect(_engine_url(url))
    except ValueError as error:
        if "know how to connect" in str(error):
            raise UserInputError(
                f"audiencesync cannot connect to {shown}: use a postgresql:// URL "
                "(or another engine Ibis supports)."
            ) from None
        raise UserInputError(f"cannot connect to {shown}: {_first_line(error, url)}.") from None
    except Exception as error:  # noqa: BLE001 (each driver raises its own errors)
        raise UserInputError(
            f"cannot connect to {shown}: {_first_line(error, url)}; check --url and that "
            "the database is reachable."
        ) from None


def _first_line(error: BaseException, url: str) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    password = make_url(url).password if "://" in url else None
    if password:
        text = text.replace(str(password), "***")
    return redact(text).rstrip(".")[:300]


def split_table(table: str) -> tuple[str | None, str]:
    """``"schema.table"`` -> ``("schema", "table")``; ``"table"`` -> ``(None, "table")``."""
    schema, dot, name = table.strip().rpartition(".")
    if not name:
        raise UserInputError("--table must name a table, such as customers or crm.customers.")
    return (schema if dot else None), name


def open_table(backend: Any, table: str) -> ir.Table:
    """The table ``table`` (``name`` or ``schema.name``) of ``backend``."""
    schema, name = split_table(table)
    try:
        result: ir.Table = backend.table(name, database=schema)
    except TableNotFound:
        try:
            names = list(backend.list_tables(database=schema))
        except Exception:  # noqa: BLE001 (a listing is only a hint)
            names = []
        hint = closest(name, names) if names else "the schema has no tables"
        raise UserInputError(f"there is no table {table!r} at that URL; {hint}.") from None
    return result


def type_name(dtype: dt.DataType) -> str:
    """The DuckDB name of an Ibis type, so linked and imported columns read alike."""
    if dtype.is_string():
        return "VARCHAR"
    return str(DuckDBType.to_string(dtype))


def describe(table: ir.Table) -> list[dict[str, str]]:
    """The table's columns as ``{"name", "type"}`` with DuckDB type names."""
    return [{"name": name, "type": type_name(dtype)} for name, dtype in table.schema().items()]


def _check_columns(table: str, columns: list[dict[str, str]], key: str) -> None:
    names = [c["name"] for c in columns]
    for name in names:
        if name.lower() in RESERVED_NAMES or name.lower().startswith(RESERVED_PREFIX):
            raise UserInputError(
                f"column {name!r} of table {table!r} uses a name audiencesync reserves "
                f"(names starting with {RESERVED_PREFIX!r}): select the table through a "
                "view that renames it."
            )
    if key not in names:
        raise UserInputError(f"table {table!r} has no column {key!r}; {closest(key, names)}.")


def _check_keys(table_name: str, table: ir.Table, key: str) -> int:
    column: Any = table[key]
    counts = table.aggregate(
        rows=table.count(), keyed=column.count(), distinct=column.nunique()
    ).to_pyarrow()
    rows, keyed, distinct = (int(counts[c][0].as_py() or 0) for c in ("rows", "keyed", "distinct"))
    if keyed < rows:
        raise UserInputError(
            f"{rows - keyed} row(s) of table {table_name!r} have no value in key column "
            f"{key!r}: choose a key that is never empty."
        )
    if distinct < keyed:
        raise UserInputError(
            f"{keyed - distinct} row(s) of table {table_name!r} repeat a value of key column "
            f"{key!r}: choose a column that identifies one profile per row."
        )
    return rows


def link(ctx: Context, actor: Actor, name: str, *, url: str, table: str, key: str) -> DatasetView:
    """Register ``table`` at ``url`` as dataset ``name`` (or re-link an existing link).

    Checks that the table exists, has the key column, and that keys are present and
    unique. Raises UserInputError, ConflictError (the name is an imported dataset),
    PermissionDeniedError.
    """
    require(actor, Action.EDIT_DATASETS)
    check_link_url(ctx, actor, url)
    dataset = check_dataset_name(name)
    with ctx.db.session() as session:
        existing = session.scalar(select(Dataset).where(Dataset.name == dataset))
        if existing is not None and existing.kind != LINK:
            raise ConflictError(
                f"{dataset!r} is an imported dataset: choose another name for the link."
            )
    backend = connect(url)
    try:
        found = open_table(backend, table)
        columns = describe(found)
        _check_columns(table, columns, key)
        rows = _check_keys(table, found, key)
    finally:
        backend.disconnect()
    source = f"{redacted_url(url)} table {table}"
    with ctx.db.session() as session:
        row = session.scalar(select(Dataset).where(Dataset.name == dataset))
        before = None if row is None else _state(row)
        if row is None:
            row = Dataset(name=dataset, kind=LINK, version=0)
            session.add(row)
        row.key_column = key
        row.source = source
        row.options = {"table": table, "key": key}
        row.data_path = None
        row.version = (row.version or 0) + 1
        row.row_count = rows
        row.columns = columns
        row.imported_at = utcnow()
        row.imported_by = actor.name
        row.link_url_encrypted = ctx.secrets.encrypt(url)
        audit.record(
            session, actor, "dataset.link", f"dataset:{dataset}", before=before, after=_state(row)
        )
        session.flush()
        return _view(row)


def _state(row: Dataset) -> dict[str, Any]:
    return {
        "source": row.source,
        "key": row.key_column,
        "rows": row.row_count,
        "columns": len(row.columns or []),
    }


def _link_row(ctx: Context, name: str) -> tuple[str, str, list[dict[str, str]]]:
    with ctx.db.session() as session:
        row = session.scalar(select(Dataset).where(Dataset.name == name))
        if row is None:
            raise NotFoundError(
                f"there is no profile dataset named {name!r}: see `audiencesync profiles list`."
            )
        if row.kind != LINK or row.link_url_encrypted is None:
            raise ConflictError(f"dataset {name!r} is an imported file, not a linked table.")
        return (
            ctx.secrets.decrypt(row.link_url_encrypted),
            str(row.options["table"]),
            list(row.columns),
        )


@contextmanager
def open_linked(ctx: Context, name: str) -> Iterator[tuple[Any, ir.Table]]:
    """The backend and table of linked dataset ``name``; its columns are refreshed."""
    url, table_name, stored = _link_row(ctx, name)
    backend = connect(url)
    try:
        table = open_table(backend, table_name)
        columns = describe(table)
        if columns != stored:
            _save_columns(ctx, name, columns)
        yield backend, table
    finally:
        backend.disconnect()


def _save_columns(ctx: Context, name: str, columns: list[dict[str, str]]) -> None:
    with ctx.db.session() as session:
        row = session.scalar(select(Dataset).where(Dataset.name == name))
        if row is not None:
            row.columns = columns
    log.info("linked dataset %s: columns changed, now %d", name, len(columns))


def refresh_link(ctx: Context, actor: Actor, name: str) -> DatasetView:
    """Read a linked table's columns and row count again (its data is always current)."""
    require(actor, Action.EDIT_DATASETS)
    dataset = check_dataset_name(name)
    with open_linked(ctx, dataset) as (_, table):
        columns = describe(table)
        rows = int(table.count().to_pyarrow().as_py())
    with ctx.db.session() as session:
        row = session.scalar(select(Dataset).where(Dataset.name == dataset))
        if row is None:
            raise NotFoundError(f"dataset {dataset!r} was removed meanwhile.")
        before = _state(row)
        row.columns = columns
        row.row_count = rows
        row.imported_at = utcnow()
        audit.record(
            session,
            actor,
            "dataset.refresh",
            f"dataset:{dataset}",
            before=before,
            after=_state(row),
        )
        session.flush()
        return _view(row)


def sample_link(ctx: Context, name: str, *, limit: int) -> pa.Table:
    """The first ``limit`` rows of a linked table, ordered by key."""
    with ctx.db.session() as session:
        row = session.scalar(select(Dataset).where(Dataset.name == name))
        key = row.key_column if row is not None else ""
    with open_linked(ctx, name) as (_, table):
        result: pa.Table = table.order_by(key).limit(limit).to_pyarrow()
        return result
