"""Linked datasets: a table in PostgreSQL (or another Ibis engine) used in place.

``audiencesync profiles link NAME --source S --table T --key K`` registers table T of
source S (profiles/sources.py: a database an administrator added) as a dataset of kind
``link``. Its segments run there, where the data is; only members' keys and mapped fields
come back. The columns are read from the table at link time and again whenever the table
is opened, so a changed table is noticed on use. Every open checks again that the source
is not the control database and the table not a system catalog.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pyarrow as pa
from ibis.backends.sql.datatypes import DuckDBType
from ibis.common.exceptions import TableNotFound
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError

from audiencesync.control import audit
from audiencesync.control.context import Context
from audiencesync.control.models import Dataset, Source, utcnow
from audiencesync.control.permissions import Action, Actor, require
from audiencesync.errors import (
    ConflictError,
    Fix,
    NotFoundError,
    PermissionDeniedError,
    UserInputError,
)
from audiencesync.logs import redact
from audiencesync.profiles import sources, spark
from audiencesync.profiles.store import (
    RESERVED_NAMES,
    RESERVED_PREFIX,
    DatasetView,
    _view,
    check_dataset_name,
    closest,
)
from audiencesync.settings import Settings

log = logging.getLogger(__name__)

LINK = "link"


#: URL query options whose values say nothing secret; every other value (password=,
#: sslpassword=, sslkey=, options=, ...) is replaced by ``***`` wherever a URL is shown.
SAFE_OPTIONS = frozenset(
    {
        "sslmode",
        "gssencmode",
        "connect_timeout",
        "application_name",
        "target_session_attrs",
        "load_balance_hosts",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "mode",
        "uri",
        "read_only",
    }
)


def _query_pairs(url: str) -> list[tuple[str, str]]:
    return parse_qsl(url.partition("?")[2], keep_blank_values=True)


def redacted_url(url: str) -> str:
    """``url`` with its password and every query value but :data:`SAFE_OPTIONS`' replaced
    by ``***`` (what an administrator's logs may show; viewers see :func:`shown_url`)."""
    base, _, _ = url.partition("?")
    try:
        shown = make_url(base).render_as_string(hide_password=True)
    except ArgumentError:
        return "[unreadable URL]"
    pairs = [(k, v if k.lower() in SAFE_OPTIONS else "***") for k, v in _query_pairs(url)]
    return f"{shown}?{urlencode(pairs, safe='*/')}" if pairs else shown


def shown_url(url: str) -> str:
    """What messages say of a source: its engine and host/database or file, as lists do."""
    try:
        backend, location = sources.describe_url(url)
    except UserInputError:
        return "the source"
    return f"{backend} {location}"


def _secrets_of(url: str) -> list[str]:
    """The password and the values of query options not in :data:`SAFE_OPTIONS`."""
    found: set[str] = set()
    try:
        password = make_url(url.partition("?")[0]).password
    except ArgumentError:
        password = None
    if password:
        found.add(str(password))
    found.update(v for k, v in _query_pairs(url) if k.lower() not in SAFE_OPTIONS and v)
    spellings = {form for value in found for form in (value, quote(value, safe=""), unquote(value))}
    return sorted((v for v in spellings if len(v) >= 2), key=len, reverse=True)


def _engine_url(url: str) -> str:
    # SQLAlchemy-style URLs name a driver (postgresql+psycopg://); Ibis wants the engine.
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise UserInputError(
            "the URL must look like postgresql://user:password@host:5432/database.", field="url"
        )
    engine = scheme.split("+", 1)[0].lower()
    if engine == "duckdb":
        # A DuckDB file's views may read any file of the server (read_csv, ATTACH,
        # sqlite_scan of the control database): the source reads its own tables only.
        path, _, _ = rest.partition("?")
        pairs = [(k, v) for k, v in _query_pairs(url) if k.lower() != "enable_external_access"]
        pairs.append(("enable_external_access", "false"))
        return f"duckdb://{path}?{urlencode(pairs)}"
    return f"{engine}://{rest}"


def connect(url: str, settings: Settings) -> Any:
    """An Ibis backend for ``url``; UserInputError with one sentence when it fails.

    Refuses (PermissionDeniedError) a connection that reached an audiencesync control
    database, whatever its URL said: that database holds the table
    :data:`sources.INSTALL_MARKER`. Spark (never a control database) has its own session.
    """
    shown = shown_url(url)
    sources.check_source_scheme(url)
    if spark.is_spark(url):
        try:
            return spark.connect(url, settings)
        except UserInputError:
            raise
        except Exception as error:  # noqa: BLE001 (Spark raises its own errors)
            raise UserInputError(
                f"cannot start or reach Spark at {shown}: {_first_line(error, url)}."
            ) from None
    try:
        backend = ibis.connect(_engine_url(url))
    except ValueError as error:
        if "know how to connect" in str(error):
            raise UserInputError(
                f"audiencesync cannot connect to {shown}: use a postgresql:// URL "
                "(or another engine Ibis supports)."
            ) from None
        raise UserInputError(f"cannot connect to {shown}: {_first_line(error, url)}.") from None
    except Exception as error:  # noqa: BLE001 (each driver raises its own errors)
        raise UserInputError(
            f"cannot connect to {shown}: {_first_line(error, url)}; check the URL and that "
            "the database is reachable.",
            field="url",
        ) from None
    try:
        _refuse_control(backend, shown)
    except BaseException:
        backend.disconnect()
        raise
    return backend


_MARKER_QUERIES = {
    "postgres": "SELECT 1 FROM pg_catalog.pg_class WHERE relname = '{m}' LIMIT 1",
    "duckdb": "SELECT 1 FROM duckdb_tables() WHERE lower(table_name) = '{m}' LIMIT 1",
    "sqlite": "SELECT 1 FROM sqlite_master WHERE lower(name) = '{m}' LIMIT 1",
}


def _refuse_control(backend: Any, shown: str) -> None:
    """Whether what the connection reached holds an audiencesync install marker."""
    query = _MARKER_QUERIES.get(getattr(backend, "name", ""))
    if query is None:
        raise UserInputError(
            f"audiencesync cannot check {shown}: sources may be PostgreSQL, SQLite or DuckDB."
        )
    try:
        found = _fetch(backend, query.format(m=sources.INSTALL_MARKER))
    except Exception:  # noqa: BLE001 (each driver raises its own errors)
        raise UserInputError(
            f"audiencesync cannot read the table list of {shown}, so cannot tell it is not "
            "its own control database: give the source's user access to the catalog."
        ) from None
    if found:
        raise PermissionDeniedError(sources.REFUSED_CONTROL)


def _fetch(backend: Any, query: str, params: tuple[Any, ...] = ()) -> list[Any]:
    if getattr(backend, "name", "") == "postgres":
        with backend.con.cursor() as cursor:
            cursor.execute(query.replace("?", "%s"), list(params))
            return list(cursor.fetchall())
    if getattr(backend, "name", "") == "duckdb":
        return list(backend.con.execute(query, list(params)).fetchall())
    cursor = backend.con.execute(query, params)
    try:
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _first_line(error: BaseException, url: str) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    for secret in _secrets_of(url):
        text = text.replace(secret, "***")
    if "://" in text:  # a driver that quotes the URL: show no part of it
        text = type(error).__name__
    return redact(text).rstrip(".")[:300]


def split_table(table: str) -> tuple[str | None, str]:
    """``"schema.table"`` -> ``("schema", "table")``; ``"table"`` -> ``(None, "table")``."""
    schema, dot, name = table.strip().rpartition(".")
    if not name:
        raise UserInputError(
            "the table must be named, such as customers or crm.customers.", field="table"
        )
    return (schema if dot else None), name


def open_table(backend: Any, table: str) -> ir.Table:
    """The table ``table`` (``name`` or ``schema.name``) of ``backend``.

    Only a base table or a view of the source's catalog: a DuckDB table function such as
    ``pragma_database_list`` (which reads like a table) or a name in an unknown catalog is
    "no such table", one sentence, never a 500.
    """
    schema, name = split_table(table)
    try:
        exists = _is_table(backend, schema, name)
        result: ir.Table | None = backend.table(name, database=schema) if exists else None
    except (TableNotFound, UserInputError, PermissionDeniedError):
        result = None
    except Exception:  # noqa: BLE001 (each engine says "no such catalog" its own way)
        result = None
    if result is None:
        try:
            names = list(backend.list_tables(database=schema))
        except Exception:  # noqa: BLE001 (a listing is only a hint)
            names = []
        hint = closest(name, names) if names else "the schema has no tables"
        raise UserInputError(f"there is no table {table!r} in that source; {hint}.") from None
    return result


def _is_table(backend: Any, schema: str | None, name: str) -> bool:
    """Whether ``schema.name`` is a base table or view in the source's own catalog."""
    engine = getattr(backend, "name", "")
    if engine == "duckdb":
        catalog, _, bare_schema = (schema or "").rpartition(".")
        query = (
            "SELECT 1 FROM information_schema.tables WHERE lower(table_name) = lower(?) "
            "AND table_type IN ('BASE TABLE', 'VIEW') AND lower(table_schema) = "
            + ("lower(?)" if bare_schema else "current_schema()")
            + " AND lower(table_catalog) = "
            + ("lower(?)" if catalog else "current_database()")
        )
        params = tuple(p for p in (name, bare_schema, catalog) if p)
        return bool(_fetch(backend, query, params))
    if engine == "sqlite":
        if schema not in (None, "main"):
            return False
        query = "SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?"
        return bool(_fetch(backend, query, (name,)))
    if engine == "postgres":
        qualified = ".".join('"' + p.replace('"', '""') + '"' for p in (schema, name) if p)
        query = (
            "SELECT 1 FROM pg_catalog.pg_class WHERE oid = to_regclass(?) "
            "AND relkind IN ('r', 'v', 'm', 'p', 'f')"
        )
        return bool(_fetch(backend, query, (qualified,)))
    if engine == "pyspark":
        # The session's catalog holds only the warehouse's own tables (profiles/spark.py
        # registers each table folder), so a listed name is a table of the source.
        return name in set(backend.list_tables(database=schema))
    return False


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


def link(
    ctx: Context, actor: Actor, name: str, *, source: str, table: str, key: str
) -> DatasetView:
    """Register ``table`` of source ``source`` as dataset ``name`` (or re-link a link).

    Checks that the table exists, is not a system catalog, has the key column, and that
    keys are present and unique. Raises UserInputError, NotFoundError (no such source),
    ConflictError (the name is an imported dataset), PermissionDeniedError.
    """
    require(actor, Action.EDIT_DATASETS)
    dataset = check_dataset_name(name)
    sources.check_table_name(table)
    source_id, source_name, url = sources.source_url(ctx, source)
    sources.check_source_url(ctx, url)
    with ctx.db.session() as session:
        existing = session.scalar(select(Dataset).where(Dataset.name == dataset))
        if existing is not None and existing.kind != LINK:
            raise ConflictError(
                f"{dataset!r} is an imported dataset: choose another name for the link."
            )
    backend = connect(url, ctx.settings)
    try:
        found = open_table(backend, table)
        _check_catalog(backend, table)
        columns = describe(found)
        _check_columns(table, columns, key)
        rows = _check_keys(table, found, key)
    finally:
        backend.disconnect()
    described = f"source {source_name} table {table}"
    with ctx.db.session() as session:
        row = session.scalar(select(Dataset).where(Dataset.name == dataset))
        before = None if row is None else _state(row)
        if row is None:
            row = Dataset(name=dataset, kind=LINK, version=0)
            session.add(row)
        row.key_column = key
        row.source = described
        row.options = {"table": table, "key": key, "source": source_name}
        row.data_path = None
        row.version = (row.version or 0) + 1
        row.row_count = rows
        row.columns = columns
        row.imported_at = utcnow()
        row.imported_by = actor.name
        row.source_id = source_id
        row.link_url_encrypted = None
        audit.record(
            session, actor, "dataset.link", f"dataset:{dataset}", before=before, after=_state(row)
        )
        try:
            session.flush()
        except IntegrityError:
            # The foreign key to the source (or the unique name) refused the row: someone
            # removed the source, or linked this name, since the checks above.
            session.rollback()
            if session.get(Source, source_id) is None:
                raise ConflictError(
                    f"source {source_name!r} was removed while dataset {dataset!r} was being "
                    "linked through it: nothing was linked; ask an administrator to add the "
                    "source again.",
                    field="source",
                ) from None
            raise ConflictError(
                f"dataset {dataset!r} was created by someone else at the same moment: "
                "reload the list and choose another name.",
                field="name",
            ) from None
        return _view(row)


def _check_catalog(backend: Any, table: str) -> None:
    """On PostgreSQL, refuse a table whose actual schema is a catalog (a search_path set
    in the URL can make an unqualified name resolve into one)."""
    if getattr(backend, "name", "") != "postgres":
        return
    schema, name = split_table(table)
    qualified = ".".join('"' + p.replace('"', '""') + '"' for p in (schema, name) if p)
    try:
        with backend.con.cursor() as cursor:
            cursor.execute(
                "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.oid = to_regclass(%s)",
                [qualified],
            )
            found = cursor.fetchone()
    except Exception:  # noqa: BLE001 (the name checks already ran; this is the second look)
        return
    if found is not None:
        sources.check_table_name(f"{found[0]}.{name}")


def _state(row: Dataset) -> dict[str, Any]:
    return {
        "source": row.source,
        "key": row.key_column,
        "rows": row.row_count,
        "columns": len(row.columns or []),
    }


def link_url_of(ctx: Context, name: str) -> str:
    """The (decrypted) URL linked dataset ``name`` reads from, for the engine only."""
    return _link_row(ctx, name)[0]


def _link_row(ctx: Context, name: str) -> tuple[str, str, list[dict[str, str]]]:
    with ctx.db.session() as session:
        row = session.scalar(select(Dataset).where(Dataset.name == name))
        if row is None:
            raise NotFoundError(
                f"there is no profile dataset named {name!r}.", fix=Fix("list", "profiles")
            )
        if row.kind != LINK or (row.source_id is None and row.link_url_encrypted is None):
            raise ConflictError(f"dataset {name!r} is an imported file, not a linked table.")
        source_id, legacy = row.source_id, row.link_url_encrypted
        table, columns = str(row.options["table"]), list(row.columns)
    if source_id is not None:
        _, url = sources.url_by_id(ctx, source_id)
    else:
        assert legacy is not None
        url = ctx.secrets.decrypt(legacy)
    # Checked on every use: a link made before these checks existed is refused too.
    sources.check_source_url(ctx, url)
    sources.check_table_name(table)
    return url, table, columns


@contextmanager
def open_linked(ctx: Context, name: str) -> Iterator[tuple[Any, ir.Table]]:
    """The backend and table of linked dataset ``name``; its columns are refreshed."""
    url, table_name, stored = _link_row(ctx, name)
    backend = connect(url, ctx.settings)
    try:
        table = open_table(backend, table_name)
        _check_catalog(backend, table_name)
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


def link_url(
    ctx: Context, actor: Actor, name: str, *, url: str, table: str, key: str
) -> DatasetView:
    """``profiles link NAME --url URL``: add source NAME for ``url`` and link through it.

    Administrators only (adding a source is theirs). A source of that name with the same
    URL is reused; one this call added is removed again when the link fails.
    """
    require(actor, Action.MANAGE_SOURCES)
    added = False
    try:
        _, _, existing = sources.source_url(ctx, name)
    except NotFoundError:
        existing = None
    if existing is None:
        sources.add_source(ctx, actor, name, url=url)
        added = True
    elif existing != url:
        raise ConflictError(
            f"there is already a source named {name!r} with another URL: link through "
            f"source {check_dataset_name(name)}, or remove that source first.",
            field="source",
        )
    try:
        return link(ctx, actor, name, source=name, table=table, key=key)
    except BaseException:
        if added:
            sources.remove_source(ctx, actor, name)
        raise
