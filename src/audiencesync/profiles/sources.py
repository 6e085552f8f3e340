"""Sources: the databases and warehouses profile tables may be linked from.

Administrators add a source with its URL (``audiencesync sources add NAME --url URL``);
the URL, which may hold a password, is stored encrypted with the home's key and never
shown back: lists show the engine and the host and database (or the file) only.
Contributors link tables through an existing source by name, so nobody but an
administrator chooses what the server connects to.

Whoever asks, no source may be audiencesync's own control database (the same server and
database under any spelling of its URL: host aliases, default ports, query options, file
paths resolved) and no table may be a system catalog (``pg_catalog``,
``information_schema``, ``sqlite_master``, ``duckdb_tables``, ...): those hold password
hashes, tokens and connections.
"""

from __future__ import annotations

import functools
import getpass
import ipaddress
import os
import re
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError
from sqlalchemy.orm import Session

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
    about,
)

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")

#: Engines that read a file on this machine.
FILE_SCHEMES = frozenset({"sqlite", "duckdb"})
#: PostgreSQL spellings.
POSTGRES_SCHEMES = frozenset({"postgresql", "postgres"})
#: The only engines a source may use (with or without a driver: ``postgresql+psycopg``).
#: Anything else (``file://``, which Ibis opens as SQLite or DuckDB by its extension, or
#: engines audiencesync does not check) is refused.
#: Spark: a local session over a warehouse folder, or Spark Connect (profiles/spark.py).
SPARK_SCHEMES = frozenset({"spark", "sc"})
ALLOWED_SCHEMES = POSTGRES_SCHEMES | FILE_SCHEMES | SPARK_SCHEMES
#: libpq options that send the connection somewhere the URL does not show (a service in
#: pg_service.conf, a password file of the server's): refused, not followed.
INDIRECT_OPTIONS = frozenset({"service", "servicefile", "passfile"})
#: The table migration 0009 creates in every control database: a source connection that
#: can see it has reached an audiencesync control database, whatever its URL said.
INSTALL_MARKER = "audiencesync_install"
#: Schemas that are system catalogs in PostgreSQL, DuckDB or SQLite.
CATALOG_SCHEMAS = frozenset(
    {"pg_catalog", "information_schema", "pg_toast", "system", "temp", "sqlite_temp"}
)
#: Table names that are catalogs whatever the schema (PostgreSQL looks in pg_catalog
#: first for unqualified names; SQLite and DuckDB keep their catalogs under these;
#: ``pragma_*`` are DuckDB and SQLite table functions that read like tables).
CATALOG_PREFIXES = ("pg_", "sqlite_", "duckdb_", "pragma_")

REFUSED_CONTROL = (
    "that URL points at audiencesync's own control database, which holds password hashes "
    "and tokens: link tables from another database."
)


@dataclass(frozen=True)
class SourceView:
    """What anyone may see of a source: never its URL, user or password."""

    name: str
    backend: str
    location: str
    created_at: datetime | None
    created_by: str | None
    datasets: tuple[str, ...]


def check_source_name(name: str) -> str:
    lowered = name.strip().lower()
    if not _NAME.match(lowered):
        raise UserInputError(
            f"{name!r} is not a valid source name: use letters, digits, '_' or '-', "
            "starting with a letter or digit, at most 100 characters."
        )
    return lowered


def scheme_of(url: str) -> str:
    """The engine a URL names, lower case, without its driver (``postgresql+psycopg``)."""
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        raise UserInputError(
            "the URL must look like postgresql://user:password@host:5432/database "
            "(or sqlite:////path/file.db, duckdb:////path/file.duckdb)."
        )
    return scheme.split("+", 1)[0].strip().lower()


def describe_url(url: str) -> tuple[str, str]:
    """``(backend, location)``: the engine and host[:port]/database or the file path."""
    backend = scheme_of(url)
    if backend in POSTGRES_SCHEMES:
        info = _pg_conninfo(url)
        host = info.get("host") or info.get("hostaddr") or "local socket"
        port = f":{info['port']}" if info.get("port") else ""
        return "postgresql", f"{host}{port}/{info.get('dbname') or '(default database)'}"
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UserInputError("the URL cannot be read: check its spelling.") from None
    if backend in FILE_SCHEMES:
        return backend, str(_file_path(url) or "(in memory)")
    port = f":{parsed.port}" if parsed.port else ""
    return backend, f"{parsed.host or ''}{port}/{parsed.database or ''}"


# --- is it the control database? ---------------------------------------------------------


def _pg_conninfo(url: str) -> dict[str, str]:
    from psycopg import conninfo

    engine_url = "postgresql://" + url.partition("://")[2]
    try:
        parsed = conninfo.conninfo_to_dict(engine_url)
    except Exception:  # noqa: BLE001 (psycopg raises ProgrammingError with the text)
        raise UserInputError(
            "the PostgreSQL URL cannot be read: write postgresql://user:password@host:5432/db."
        ) from None
    return {k: str(v) for k, v in parsed.items() if v is not None}


@functools.cache
def _own_addresses() -> frozenset[str]:
    found: set[str] = set()
    for name in {socket.gethostname(), socket.getfqdn()}:
        try:
            found.update(str(info[4][0]) for info in socket.getaddrinfo(name, None))
        except OSError:
            continue
    return frozenset(found)


def _host_keys(host: str) -> set[str]:
    """Names a host is known by: ``local`` for this machine, else its addresses."""
    host = host.strip().strip("[]").lower()
    if not host or host.startswith(("/", "@")):
        return {"local"}  # a Unix socket (or the default): this machine's server
    keys = {host}
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return keys
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            continue
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address.is_loopback or address.is_unspecified or str(address) in _own_addresses():
            keys.add("local")
        else:
            keys.add(str(address))
    return keys


def _port_numbers(text: str) -> set[int]:
    numbers: set[int] = set()
    for part in text.split(","):
        try:
            numbers.add(int(part.strip() or "5432"))
        except ValueError:
            raise UserInputError(
                f"the port {part.strip()!r} in the URL is not a number: write host:5432."
            ) from None
    return numbers


def _pg_identity(url: str) -> tuple[set[str], set[int], str]:
    info = _pg_conninfo(url)
    # libpq connects to hostaddr when it is given (host then only names the server for
    # TLS and passwords): both count.
    hosts = []
    for key in ("host", "hostaddr"):
        if info.get(key):
            hosts += info[key].split(",")
    if not hosts:
        hosts = os.environ.get("PGHOST", "").split(",")
    ports = _port_numbers(info.get("port") or os.environ.get("PGPORT", "") or "5432")
    user = info.get("user") or os.environ.get("PGUSER") or getpass.getuser()
    dbname = info.get("dbname") or os.environ.get("PGDATABASE") or user
    keys: set[str] = set()
    for host in hosts:
        keys |= _host_keys(host)
    return keys, ports, dbname


def _file_path(url: str) -> Path | None:
    try:
        database = make_url(url).database
    except ArgumentError:
        database = url.partition("://")[2].lstrip("/")
    if not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        database = database.removeprefix("file:").split("?", 1)[0]
    return Path(database).expanduser().resolve()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a == b or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return a == b


def is_control_database(url: str, control_url: str) -> bool:
    """Whether ``url`` reaches the same server and database as ``control_url``."""
    scheme, control_scheme = scheme_of(url), scheme_of(control_url)
    if scheme in POSTGRES_SCHEMES and control_scheme in POSTGRES_SCHEMES:
        hosts, ports, dbname = _pg_identity(url)
        control_hosts, control_ports, control_db = _pg_identity(control_url)
        return bool(hosts & control_hosts) and bool(ports & control_ports) and dbname == control_db
    if scheme in FILE_SCHEMES and control_scheme in FILE_SCHEMES:
        path, control_path = _file_path(url), _file_path(control_url)
        return path is not None and control_path is not None and _same_file(path, control_path)
    return False


def check_source_scheme(url: str) -> str:
    """The URL's engine, if sources may use it; UserInputError otherwise."""
    scheme = scheme_of(url)
    if scheme not in ALLOWED_SCHEMES:
        raise UserInputError(
            f"sources may be PostgreSQL, SQLite or DuckDB databases or Spark, not "
            f"{scheme[:40]!r}: write postgresql://user:password@host:5432/database, "
            "sqlite:////path/file.db, duckdb:////path/file.duckdb, spark://local or "
            "sc://host:15002."
        )
    if scheme in POSTGRES_SCHEMES:
        indirect = sorted(INDIRECT_OPTIONS & set(_pg_conninfo(url)))
        if indirect:
            raise UserInputError(
                f"the URL's {indirect[0]}= option points elsewhere (a service or password "
                "file of the server): write the host, port, database and user in the URL."
            )
    return scheme


def check_source_url(ctx: Context, url: str) -> None:
    """Refuse URLs of other engines, or that reach the control database or a file in the
    home folder (what the connection actually reached is checked by linked.connect)."""
    scheme = check_source_scheme(url)
    if is_control_database(url, ctx.settings.control_database_url):
        raise PermissionDeniedError(REFUSED_CONTROL)
    if scheme in FILE_SCHEMES:
        path = _file_path(url)
        if path is None or path.is_relative_to(ctx.home.resolve()):
            raise UserInputError(
                "that file is inside audiencesync's home folder, which holds its keys and "
                "control database (or is an in-memory database): give a file elsewhere."
            )


def check_table_name(table: str) -> None:
    """Refuse a system catalog, by schema or by name."""
    parts = [p.strip().strip('"').lower() for p in table.split(".")]
    *schemas, name = parts
    if any(s in CATALOG_SCHEMAS or s.startswith("pg_") for s in schemas) or name.startswith(
        CATALOG_PREFIXES
    ):
        raise PermissionDeniedError(
            f"{table!r} is a system catalog of the database, not a table of profiles: "
            "link a table of your own."
        )


# --- the service ---------------------------------------------------------------------------


def _view(row: Source, datasets: list[str]) -> SourceView:
    return SourceView(
        name=row.name,
        backend=row.backend,
        location=row.location,
        created_at=row.created_at,
        created_by=row.created_by,
        datasets=tuple(datasets),
    )


def _users(session: Session, source_id: int) -> list[str]:
    return list(
        session.scalars(
            select(Dataset.name).where(Dataset.source_id == source_id).order_by(Dataset.name)
        )
    )


def add_source(ctx: Context, actor: Actor, name: str, *, url: str) -> SourceView:
    """Add source ``name`` after checking it is allowed and that it answers.

    Raises PermissionDeniedError (not an administrator, the control database),
    ConflictError (the name is taken), UserInputError (the URL or the connection).
    """
    require(actor, Action.MANAGE_SOURCES)
    with about("name"):
        source = check_source_name(name)
    url = url.strip()
    with about("url"):
        check_source_scheme(url)
        backend, location = describe_url(url)
        check_source_url(ctx, url)
        path = _file_path(url) if backend in FILE_SCHEMES else None
        if path is not None and not path.is_file():
            raise UserInputError(f"there is no database file {path}: check the path in the URL.")
    with ctx.db.session() as session:
        if session.scalar(select(Source.id).where(Source.name == source)) is not None:
            raise ConflictError(
                f"there is already a source named {source!r}: remove it first or choose "
                "another name.",
                field="name",
            )
    from audiencesync.profiles import linked  # linked reads tables through sources

    with about("url"):  # it answers, or one sentence saying why not
        linked.connect(url, ctx.settings).disconnect()
    with ctx.db.session() as session:
        row = Source(
            name=source,
            backend=backend,
            location=location,
            url_encrypted=ctx.secrets.encrypt(url),
            created_at=utcnow(),
            created_by=actor.name,
        )
        session.add(row)
        audit.record(
            session,
            actor,
            "source.add",
            f"source:{source}",
            after={"backend": backend, "location": location},
        )
        session.flush()
        return _view(row, [])


def list_sources(ctx: Context, actor: Actor) -> list[SourceView]:
    require(actor, Action.READ)
    with ctx.db.session() as session:
        rows = list(session.scalars(select(Source).order_by(Source.name)))
        return [_view(r, _users(session, r.id)) for r in rows]


def _get(session: Session, name: str) -> Source:
    row = session.scalar(select(Source).where(Source.name == check_source_name(name)))
    if row is None:
        raise NotFoundError(
            f"there is no source named {name!r}: ask an administrator to add it.",
            field="source",
            fix=Fix("list", "sources"),
        )
    return row


def get_source(ctx: Context, actor: Actor, name: str) -> SourceView:
    require(actor, Action.READ)
    with ctx.db.session() as session:
        row = _get(session, name)
        return _view(row, _users(session, row.id))


def remove_source(ctx: Context, actor: Actor, name: str) -> None:
    """Remove a source no dataset links through (ConflictError names those that do)."""
    require(actor, Action.MANAGE_SOURCES)
    with ctx.db.session() as session:
        row = _get(session, name)
        users = _users(session, row.id)
        if users:
            raise ConflictError(
                f"source {row.name!r} is used by dataset(s) {', '.join(users)}: remove "
                "those datasets first."
            )
        audit.record(
            session,
            actor,
            "source.remove",
            f"source:{row.name}",
            before={"backend": row.backend, "location": row.location},
        )
        source_id, source_name = row.id, row.name
        session.delete(row)
        try:
            session.flush()
        except IntegrityError:
            # The foreign key of datasets.source_id: a dataset was linked through it
            # since the check above.
            session.rollback()
            linked = ", ".join(_users(session, source_id)) or "linked just now"
            raise ConflictError(
                f"source {source_name!r} is used by dataset(s) {linked}: remove those "
                "datasets first."
            ) from None


def source_url(ctx: Context, name: str) -> tuple[int, str, str]:
    """``(id, name, url)`` of source ``name``, decrypted, for the linking engine only."""
    with ctx.db.session() as session:
        row = _get(session, name)
        return row.id, row.name, ctx.secrets.decrypt(row.url_encrypted)


def url_by_id(ctx: Context, source_id: int) -> tuple[str, str]:
    """``(name, url)`` of the source with id ``source_id``."""
    with ctx.db.session() as session:
        row = session.get(Source, source_id)
        if row is None:
            raise NotFoundError("the source of this linked dataset was removed: link it again.")
        return row.name, ctx.secrets.decrypt(row.url_encrypted)
