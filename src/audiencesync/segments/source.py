"""Opening a profile dataset as an Ibis table, wherever it lives.

An imported dataset is read by an in-process DuckDB over its current Parquet file (no
file lock, so any number of processes can evaluate at once); a linked table is read on
its own engine through Ibis, so segments run where the data is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import duckdb
import ibis

# Loaded with this module rather than on a run's first query (a quarter of a second):
# a worker or a server pays it once, at start.
import ibis.backends.duckdb
import ibis.expr.types as ir
from sqlalchemy import select

from audiencesync import duck
from audiencesync.control.context import Context
from audiencesync.control.models import Dataset
from audiencesync.errors import Fix, NotFoundError
from audiencesync.profiles import linked, store
from audiencesync.segments.fields import FieldType, kind_of


@dataclass(frozen=True)
class ProfileSource:
    """One dataset opened: its table, key column and the engine that reads it."""

    dataset: str
    kind: str
    key: str
    backend: Any
    table: ir.Table
    #: the linked source's URL (None for an imported dataset), for engines that read
    #: members by another path than Ibis (ADBC for PostgreSQL, Parquet for Spark). It may
    #: hold a password: never in the repr.
    url: str | None = field(default=None, repr=False)

    @property
    def engine(self) -> str:
        """The engine's name: ``duckdb``, ``postgres``..."""
        return str(self.backend.name)

    def columns(self) -> dict[str, str]:
        """Field name -> DuckDB type name, read from the live table."""
        return {name: linked.type_name(dtype) for name, dtype in self.table.schema().items()}

    def field_types(self) -> dict[str, FieldType]:
        return {n: FieldType(kind_of(d), d) for n, d in self.table.schema().items()}


def dataset_row(ctx: Context, name: str) -> tuple[int, str, str]:
    """``(id, kind, key column)`` of dataset ``name``, or NotFoundError."""
    with ctx.db.session() as session:
        row = session.scalar(select(Dataset).where(Dataset.name == name))
        if row is None:
            raise NotFoundError(
                f"there is no profile dataset named {name!r}.", fix=Fix("list", "profiles")
            )
        return row.id, row.kind, row.key_column


@contextmanager
def open_source(ctx: Context, dataset: str) -> Iterator[ProfileSource]:
    """The dataset's table, open for the duration of the block."""
    _, kind, key = dataset_row(ctx, dataset)
    if kind == linked.LINK:
        url = linked.link_url_of(ctx, dataset)
        with linked.open_linked(ctx, dataset) as (backend, table):
            yield ProfileSource(dataset, kind, key, backend, table, url)
        return
    data = store.parquet_key(ctx, dataset)
    backend = ibis.duckdb.connect(**duck.config())
    duck.quiet(backend.con)
    try:
        path = ctx.storage.local_path(data)
        if path is not None:
            table = backend.read_parquet(path, table_name=dataset)
        else:  # in a bucket: DuckDB scans an Arrow dataset over Arrow's S3 filesystem
            backend.con.register(dataset, ctx.storage.dataset(data))
            table = backend.table(dataset)
        yield ProfileSource(dataset, kind, key, backend, table)
    except (duckdb.Error, OSError):
        # The file went away under the reader (opening it or in the block): a dataset
        # removed or refreshed meanwhile is a 404 or 409 sentence, not a server error.
        if (gone := store.vanished(ctx, dataset, data)) is not None:
            raise gone from None
        raise
    finally:
        backend.disconnect()
