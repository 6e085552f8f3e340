"""Segment membership as a stream of Arrow record batches, for the export engine.

``stream_members`` reads the union of several segments of one dataset, each profile
once, as batches of ``_as_key`` (the profile key) plus the requested fields. The engine
streams (DuckDB's ``fetch_record_batch`` through Ibis ``to_pyarrow_batches``), so memory
stays bounded by the batch size, not the segment size. PostgreSQL is read through ADBC
and Spark through Parquet it writes (``_open_reader``). When the stream is read to its
end, each segment's size is recorded in its history.
"""

from __future__ import annotations

import shutil
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from datetime import datetime
from functools import reduce
from types import TracebackType
from typing import Any

import ibis
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from audiencesync.control.context import Context
from audiencesync.control.permissions import Action, Actor, require
from audiencesync.errors import UserInputError
from audiencesync.profiles import linked, spark
from audiencesync.profiles.store import RESERVED_PREFIX
from audiencesync.segments.evaluation import prepare, record_evaluation
from audiencesync.segments.service import check_segment_name
from audiencesync.segments.source import ProfileSource
from audiencesync.segments.validation import suggest

#: The column holding each member's profile key.
KEY_COLUMN = f"{RESERVED_PREFIX}key"
_FLAG = f"{RESERVED_PREFIX}in_"


class MemberStream:
    """An iterator of record batches (``_as_key`` + fields) with its ``schema``.

    Iterate it once. It holds an engine connection until it is exhausted or closed;
    use it as a context manager, or read it to the end.
    """

    def __init__(
        self,
        schema: pa.Schema,
        batches: Iterator[pa.RecordBatch],
        stack: ExitStack,
    ) -> None:
        self.schema = schema
        self._batches = batches
        self._stack = stack

    def __iter__(self) -> MemberStream:
        return self

    def __next__(self) -> pa.RecordBatch:
        try:
            return next(self._batches)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the engine connection (safe to call more than once)."""
        self._stack.close()

    def __enter__(self) -> MemberStream:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def stream_members(
    ctx: Context,
    segment_names: Sequence[str],
    fields: Sequence[str],
    *,
    batch_rows: int = 100_000,
    now: datetime | None = None,
) -> MemberStream:
    """The members of the union of ``segment_names``, each profile once, in batches.

    Columns: ``_as_key`` (the dataset's key) then ``fields`` in the order given. No
    permission check: the caller (the export engine) has done it. Raises NotFoundError
    (a missing segment), UserInputError (segments of different datasets, an unknown or
    reserved field, a rule that no longer fits the table).
    """
    if batch_rows < 1:
        raise UserInputError("batch_rows must be at least 1.")
    names = [check_segment_name(n) for n in segment_names]
    wanted = list(dict.fromkeys(fields))
    stack = ExitStack()
    try:
        prepared = stack.enter_context(prepare(ctx, names, now=now))
        source = prepared.source
        table: Any = source.table
        columns = list(table.columns)
        for field in wanted:
            if field.startswith(RESERVED_PREFIX) or field not in columns:
                raise UserInputError(
                    f"dataset {source.dataset!r} has no field {field!r}; {suggest(field, columns)}"
                )
        segments = prepared.segments
        predicates = [prepared.compiler.predicate(s.rules) for s in segments]
        selection = {KEY_COLUMN: table[source.key], **{f: table[f] for f in wanted}}
        output = list(selection)
        if len(segments) == 1:
            expression = table.filter(predicates[0]).select(**selection)
            flags: list[str] = []
        else:
            # One scan: a flag per segment tells which segments each member is in, so
            # every segment's size is known when the stream ends.
            flags = [f"{_FLAG}{i}" for i in range(len(segments))]
            projected = table.select(**selection, **dict(zip(flags, predicates, strict=True)))
            expression = projected.filter(reduce(lambda a, b: a | b, (projected[f] for f in flags)))
        reader = _open_reader(ctx, source, expression, batch_rows, stack)
        stack.callback(reader.close)
    except BaseException:
        stack.close()
        raise
    schema = pa.schema([reader.schema.field(name) for name in output])
    started = time.perf_counter()

    def batches() -> Iterator[pa.RecordBatch]:
        sizes = [0] * len(segments)
        for batch in _read(reader):
            if flags:
                for i, flag in enumerate(flags):
                    sizes[i] += int(pc.sum(batch.column(flag)).as_py() or 0)
                yield batch.select(output)
            else:
                sizes[0] += batch.num_rows
                yield batch
        stack.close()
        for segment, size in zip(segments, sizes, strict=True):
            record_evaluation(
                ctx, segment.id, kind="stream", size=size, started=started, actor=None
            )

    return MemberStream(schema, batches(), stack)


def _open_reader(
    ctx: Context, source: ProfileSource, expression: Any, batch_rows: int, stack: ExitStack
) -> pa.RecordBatchReader:
    """The members as a stream of record batches, the fastest way each engine allows.

    DuckDB streams through Ibis. PostgreSQL runs the SQL Ibis compiles through ADBC,
    which decodes the binary COPY protocol straight into Arrow. Spark evaluates the query
    and writes Parquet into a scratch folder, read here in batches: nothing is collected
    to the driver.
    """
    if source.engine == "postgres" and source.url is not None:
        sql = str(ibis.to_sql(expression, dialect="postgres"))
        return _as_ibis_types(_postgres_reader(source.url, sql, stack), expression)
    if source.engine == "pyspark" and source.url is not None:
        folder = spark.exchange_folder(ctx.settings, source.url.startswith("spark"))
        stack.callback(shutil.rmtree, folder, True)
        spark.write_members(source.backend, str(source.backend.compile(expression)), folder)
        found = ds.dataset(folder, format="parquet")
        scanner = found.scanner(batch_size=batch_rows, batch_readahead=2, fragment_readahead=1)
        return _as_ibis_types(scanner.to_reader(), expression)
    reader: pa.RecordBatchReader = expression.to_pyarrow_batches(chunk_size=batch_rows)
    return reader


def _as_ibis_types(found: pa.RecordBatchReader, expression: Any) -> pa.RecordBatchReader:
    """``found`` with the types Ibis gives the query (the file path's), batch by batch.

    ADBC reads PostgreSQL's numeric as text, Spark's Parquet may name types its own way;
    the types of the table as Ibis sees it are the contract.
    """
    target: pa.Schema = expression.schema().to_pyarrow()
    if found.schema.equals(target):
        return found
    return pa.RecordBatchReader.from_batches(target, (b.cast(target) for b in found))


def _postgres_reader(url: str, sql: str, stack: ExitStack) -> pa.RecordBatchReader:
    import adbc_driver_postgresql.dbapi as adbc_pg

    scheme, _, rest = url.partition("://")
    try:
        connection = adbc_pg.connect(f"{scheme.split('+', 1)[0]}://{rest}")
    except Exception as error:  # noqa: BLE001 (the driver raises its own errors)
        raise UserInputError(
            f"cannot read members from {linked.redacted_url(url)}: "
            f"{linked._first_line(error, url)}."
        ) from None
    stack.callback(connection.close)
    cursor = connection.cursor()
    stack.callback(cursor.close)
    cursor.execute(sql)
    reader: pa.RecordBatchReader = cursor.fetch_record_batch()
    return reader


def _read(reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    while True:
        # DuckDB 1.5 flags the fetch call Ibis 12 streams with as deprecated, and fails
        # outright when warnings are errors; the call is the one that streams, so keep it.
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r"fetch_\w+\(\) is deprecated", category=DeprecationWarning
            )
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
        yield batch


def members(
    ctx: Context,
    actor: Actor,
    segment_names: Sequence[str],
    fields: Sequence[str],
    *,
    batch_rows: int = 100_000,
    now: datetime | None = None,
) -> MemberStream:
    """``stream_members`` for a user: needs the READ permission."""
    require(actor, Action.READ)
    return stream_members(ctx, segment_names, fields, batch_rows=batch_rows, now=now)
