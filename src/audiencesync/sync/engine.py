"""One run of an export: members -> identifiers -> plan -> push -> confirm -> read back.

1. The union of the export's segments is streamed (each profile once) with the mapped
   identifier fields; each field is normalized and hashed; rejects are counted by reason
   with up to 100 (profile key, reason) samples, never a value.
2. The hashed set is diffed against the confirmed snapshot with DuckDB anti-joins: adds,
   and in mirror mode removals. ``full`` re-sends every current identifier.
3. Batches of at most the destination's limit, one identifier type each, go out from a
   small thread pool; every acknowledged batch is journaled at once, so a run killed at
   any instant is resumed by the next run with nothing lost.
4. The audience is read back and stored with the run.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from audiencesync import duck
from audiencesync.control.context import Context
from audiencesync.destinations.base import BatchResult, Destination
from audiencesync.errors import (
    AudiencesyncError,
    DestinationError,
    ReauthenticationRequiredError,
)
from audiencesync.identifiers import HASH_SQL, PREPARED_SCHEMA, PreparedBatch, prepare_batch
from audiencesync.logs import redact
from audiencesync.segments.membership import KEY_COLUMN, stream_members
from audiencesync.sync.snapshot import ADD, REMOVE, Snapshot, read_batches, scratch_parquet
from audiencesync.types import IdentifierType

log = logging.getLogger(__name__)

MAX_SAMPLES_PER_REASON = 100
MEMBER_BATCH_ROWS = 100_000


@dataclass(frozen=True)
class RunInput:
    """What the engine needs to know of an export for one run."""

    export_id: int
    audience_id: str
    segments: tuple[str, ...]
    fields: dict[IdentifierType, str]
    default_country: str | None
    mirror: bool
    dry_run: bool = False
    full: bool = False


@dataclass
class RunOutcome:
    """Counters and errors of a run, updated as it goes (read by progress reporters)."""

    phase: str = "starting"
    members: int = 0
    identifiers: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, dict[str, int]] = field(default_factory=dict)
    reject_samples: dict[str, list[list[str]]] = field(default_factory=dict)
    planned_adds: dict[str, int] = field(default_factory=dict)
    planned_removes: dict[str, int] = field(default_factory=dict)
    added: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)
    resent: int = 0
    failed: int = 0
    requests: int = 0
    bytes_sent: int = 0
    batches_done: int = 0
    batches_total: int = 0
    errors: list[str] = field(default_factory=list)
    audience: dict[str, Any] = field(default_factory=dict)
    cancelled: bool = False
    fatal: bool = False
    #: Wall seconds per phase ("planning" overlaps "sending": types are diffed while sent).
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timing(self, phase: str) -> Iterator[None]:
        """Add the wall time of the ``with`` block to ``phase``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self.seconds[phase] = round(self.seconds.get(phase, 0.0) + elapsed, 3)

    @property
    def to_send(self) -> int:
        return sum(self.planned_adds.values()) + sum(self.planned_removes.values())

    @property
    def sent(self) -> int:
        return sum(self.added.values()) + sum(self.removed.values())

    def counts(self) -> dict[str, Any]:
        return {
            "members": self.members,
            "identifiers": dict(self.identifiers),
            "rejected": {k: dict(v) for k, v in self.rejected.items()},
            "planned_adds": dict(self.planned_adds),
            "planned_removes": dict(self.planned_removes),
            "added": dict(self.added),
            "removed": dict(self.removed),
            "resent": self.resent,
            "failed": self.failed,
            "requests": self.requests,
            "bytes_sent": self.bytes_sent,
            "seconds": dict(self.seconds),
        }

    def progress(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "done": self.sent,
            "total": self.to_send,
            "batches_done": self.batches_done,
            "batches_total": self.batches_total,
        }

    def status(self) -> str:
        if self.cancelled:
            return "cancelled"
        if self.fatal or (self.errors and self.sent == 0 and self.to_send > 0):
            return "failed"
        if self.errors:
            return "partially_succeeded"
        return "succeeded"


Reporter = Callable[[RunOutcome], None]
CancelCheck = Callable[[], bool]


def collect_identifiers(
    ctx: Context, run: RunInput, work: Path, outcome: RunOutcome, report: Reporter
) -> dict[IdentifierType, Path]:
    """Stream members and normalize each mapped field; one file per identifier type.

    The files hold the accepted values normalized but not hashed (``PREPARED_SCHEMA``):
    the plan hashes them in DuckDB inside its diff query, so the 64-character hashes of
    the values that did not change are never copied out of DuckDB, written or read back.
    """
    outcome.phase = "reading members"
    report(outcome)
    fields = list(dict.fromkeys(run.fields.values()))
    paths = {kind: work / f"current-{kind.value}.parquet" for kind in run.fields}
    writers = {
        kind: pq.ParquetWriter(**scratch_parquet(path, PREPARED_SCHEMA))
        for kind, path in paths.items()
    }

    def prepare(kind: IdentifierType, values: pa.Array) -> PreparedBatch:
        return prepare_batch(kind, values, default_country=run.default_country)

    def take(batch: pa.RecordBatch, jobs: dict[IdentifierType, Future[PreparedBatch]]) -> None:
        keys = batch.column(KEY_COLUMN)
        for kind, job in jobs.items():
            prepared = job.result()
            outcome.identifiers[kind.value] = (
                outcome.identifiers.get(kind.value, 0) + prepared.accepted
            )
            if prepared.rejected:
                _count_rejects(outcome, kind, keys, prepared.reasons, prepared.rejected)
            if prepared.accepted:
                writers[kind].write_table(prepared.rows)
        report(outcome)

    # Arrow's kernels release the GIL: the types of a batch are normalized side by side
    # in two threads, while this thread reads the next batch of members.
    try:
        with (
            stream_members(ctx, run.segments, fields, batch_rows=MEMBER_BATCH_ROWS) as stream,
            ThreadPoolExecutor(max_workers=2, thread_name_prefix="normalize") as pool,
        ):
            pending: tuple[pa.RecordBatch, dict[IdentifierType, Future[PreparedBatch]]] | None
            pending = None
            for batch in stream:
                outcome.members += batch.num_rows
                jobs = {
                    kind: pool.submit(prepare, kind, batch.column(name))
                    for kind, name in run.fields.items()
                }
                if pending is not None:
                    take(*pending)
                pending = (batch, jobs)
            if pending is not None:
                take(*pending)
    finally:
        for writer in writers.values():
            writer.close()
    return paths


def _count_rejects(
    outcome: RunOutcome,
    kind: IdentifierType,
    keys: pa.Array,
    reasons: pa.Array,
    counted: Any,
) -> None:
    per_kind = outcome.rejected.setdefault(kind.value, {})
    for reason, number in counted.items():
        per_kind[str(reason)] = per_kind.get(str(reason), 0) + int(number)
        samples = outcome.reject_samples.setdefault(str(reason), [])
        room = MAX_SAMPLES_PER_REASON - len(samples)
        if room <= 0:
            continue
        where = pc.equal(reasons, pa.scalar(str(reason)))
        picked = pc.filter(keys, where).slice(0, room)
        # The key identifies the profile for the user; when a dataset is keyed on an email
        # or a phone, the redaction keeps that personal value out of the run record.
        samples.extend([redact(str(key)), kind.value] for key in picked.to_pylist())


PlannedFile = tuple[str, IdentifierType, Path, int]
"""(action, identifier type, file of hashes, how many)"""


def plan(
    snapshot: Snapshot,
    current: dict[IdentifierType, Path],
    work: Path,
    run: RunInput,
    outcome: RunOutcome,
) -> Iterator[PlannedFile]:
    """Diff each type's identifiers against its confirmed hashes, one type at a time.

    A generator: the pusher starts sending a type's batches while the next type is
    being planned. Types confirmed earlier but no longer mapped are all removed (mirror).
    """
    outcome.phase = "planning"
    kinds = sorted(set(current) | (snapshot.types() if run.mirror else set()))
    for kind in kinds:
        with outcome.timing("planning"):
            files = _diff(snapshot, kind, current.get(kind), work, run, outcome)
        for action, path in files:
            number = pq.ParquetFile(path).metadata.num_rows
            if number:
                totals = outcome.planned_adds if action == ADD else outcome.planned_removes
                totals[kind.value] = number
                yield action, kind, path, number


def _diff(
    snapshot: Snapshot,
    kind: IdentifierType,
    current: Path | None,
    work: Path,
    run: RunInput,
    outcome: RunOutcome,
) -> list[tuple[str, Path]]:
    """One type's removals (mirror) and adds, as Parquet files of hashes.

    The current values are hashed here, inside the query (``HASH_SQL``). A connection
    per type, closed before its files are sent: its memory is returned first.
    """
    mine = (
        f"SELECT {HASH_SQL} AS hash FROM read_parquet('{current}')"
        if current is not None
        else "SELECT NULL::VARCHAR AS hash WHERE false"
    )
    with duck.connect() as con:
        snapshot.compact(kind, con)
        confirmed = snapshot.confirmed_sql(kind)
        if confirmed is None:
            sections = [(ADD, f"SELECT DISTINCT hash FROM ({mine})")]  # nothing to diff
        elif run.full:
            # Each side in parentheses: the confirmed query may start with WITH and
            # holds a UNION ALL, which INTERSECT / EXCEPT would otherwise bind into.
            (resent,) = con.execute(
                f"SELECT count(*) FROM (({mine}) INTERSECT (SELECT hash FROM ({confirmed})))"
            ).fetchone() or (0,)
            outcome.resent += int(resent)
            sections = [(ADD, f"SELECT DISTINCT hash FROM ({mine})")]
            if run.mirror:
                removes = f"(SELECT hash FROM ({confirmed})) EXCEPT ({mine})"
                sections.insert(0, (REMOVE, removes))
        else:
            # One pass: a full outer join keeps the hashes found on one side only.
            con.execute(
                "CREATE TEMP TABLE difference AS "
                "SELECT mine.hash AS current, confirmed.hash AS confirmed "
                f"FROM ({mine}) AS mine FULL OUTER JOIN ({confirmed}) AS confirmed "
                "ON mine.hash = confirmed.hash "
                "WHERE mine.hash IS NULL OR confirmed.hash IS NULL"
            )
            sections = [
                (ADD, "SELECT DISTINCT current AS hash FROM difference WHERE current IS NOT NULL")
            ]
            if run.mirror:
                removes = (
                    "SELECT DISTINCT confirmed AS hash FROM difference WHERE confirmed IS NOT NULL"
                )
                sections.insert(0, (REMOVE, removes))
        files = []
        for action, query in sections:
            path = work / f"{action}-{kind.value}.parquet"
            con.execute(f"COPY ({query}) TO '{path}' (FORMAT parquet, COMPRESSION uncompressed)")
            files.append((action, path))
    return files


def _batches(
    files: Iterator[PlannedFile], outcome: RunOutcome, size: int
) -> Iterator[tuple[str, IdentifierType, pa.Array]]:
    """Each planned file in batches of at most ``size`` hashes, read with bounded memory."""
    for action, kind, path, number in files:
        outcome.batches_total += -(-number // size)
        # Batches span row groups, so each request but the last carries ``size`` hashes.
        for batch in read_batches(path, size):
            yield action, kind, batch.column(0)


def push(
    destination: Destination,
    snapshot: Snapshot,
    run: RunInput,
    files: Iterator[PlannedFile],
    outcome: RunOutcome,
    *,
    concurrency: int,
    report: Reporter,
    cancelled: CancelCheck,
) -> None:
    """Send the planned batches; journal each acknowledged one before counting it."""
    size = destination.max_batch_size
    report(outcome)
    lock = threading.Lock()

    def send(
        action: str, kind: IdentifierType, hashes: pa.Array
    ) -> tuple[BatchResult, str, IdentifierType, pa.Array]:
        if action == ADD:
            result = destination.add_batch(run.audience_id, kind, hashes)
        else:
            result = destination.remove_batch(run.audience_id, kind, hashes)
        snapshot.record(action, kind, hashes)
        return result, action, kind, hashes

    in_flight: set[Future[tuple[BatchResult, str, IdentifierType, pa.Array]]] = set()
    source = _batches(files, outcome, size)
    stop = False
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="push") as pool:
        while True:
            while not stop and len(in_flight) < concurrency:
                if cancelled():
                    outcome.cancelled = True
                    stop = True
                    break
                item = next(source, None)
                if item is None:
                    break
                outcome.phase = "sending"
                in_flight.add(pool.submit(send, *item))
            if not in_flight:
                break
            done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    result, action, kind, hashes = future.result()
                except ReauthenticationRequiredError as error:
                    with lock:
                        outcome.errors.append(error.message)
                        outcome.fatal = True
                    stop = True
                    continue
                except DestinationError as error:
                    with lock:
                        outcome.errors.append(error.message)
                    stop = True
                    continue
                with lock:
                    totals = outcome.added if action == ADD else outcome.removed
                    totals[kind.value] = totals.get(kind.value, 0) + len(hashes)
                    outcome.requests += result.requests
                    outcome.bytes_sent += result.bytes_sent
                    outcome.batches_done += 1
                report(outcome)
    outcome.failed = (
        max(0, outcome.to_send - outcome.sent) if (outcome.errors or outcome.cancelled) else 0
    )


def execute(
    ctx: Context,
    run_id: int,
    run: RunInput,
    destination: Destination | None,
    *,
    concurrency: int,
    report: Reporter,
    cancelled: CancelCheck,
) -> RunOutcome:
    """Do one run; every failure ends up as plain words in ``outcome.errors``."""
    outcome = RunOutcome()
    snapshot = Snapshot(ctx.home, run.export_id, run.audience_id)
    work = snapshot.scratch(run_id)
    started = time.perf_counter()
    try:
        if snapshot.clear_pending() and destination is not None:
            # A clear was killed between emptying the audience and resetting the snapshot.
            outcome.phase = "finishing an interrupted clear"
            report(outcome)
            destination.clear(run.audience_id)
            snapshot.reset()
            snapshot.clear_done()
        with outcome.timing("members_and_hashing"):
            current = collect_identifiers(ctx, run, work, outcome, report)
        files = plan(snapshot, current, work, run, outcome)
        if run.dry_run or destination is None:
            for _ in files:
                report(outcome)
            outcome.phase = "planned"
            return outcome
        with outcome.timing("sending"):
            push(
                destination, snapshot, run, files, outcome,
                concurrency=concurrency, report=report, cancelled=cancelled,
            )  # fmt: skip
        with outcome.timing("confirming"):
            snapshot.compact_all()
        if not outcome.fatal:
            with outcome.timing("reading_back"):
                outcome.phase = "reading back the audience"
                report(outcome)
                try:
                    audience = destination.describe_audience(run.audience_id)
                    outcome.audience = {
                        "approximate_number_users": audience.approximate_number_users,
                        "upload_status": audience.upload_status,
                        "targetable_status": audience.targetable_status,
                        "status": audience.status,
                    }
                except AudiencesyncError as error:
                    outcome.errors.append(f"the audience could not be read back: {error.message}")
        outcome.phase = "done"
        return outcome
    except AudiencesyncError as error:
        outcome.errors.append(error.message)
        outcome.fatal = True
        return outcome
    finally:
        shutil.rmtree(work, ignore_errors=True)
        log.info(
            "run %d: %d members, %d sent in %.2fs",
            run_id, outcome.members, outcome.sent, time.perf_counter() - started,
        )  # fmt: skip
