"""An erasure run: one export's removal of the identifiers of one erasure.

The run removes, through the export's connection, every hash of the erasure (held by
the confirmed snapshot or not: an unacknowledged add may have reached Snapchat),
journaling each acknowledged batch like any run (``engine.push``). Killed at any point,
the next erasure run of the same erasure sends the removals again (idempotent at
Snapchat): it ends exact (docs/privacy.md, "Erasure").
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq

from audiencesync import duck
from audiencesync.control.context import Context
from audiencesync.destinations.base import Destination
from audiencesync.errors import AudiencesyncError, ConflictError, Fix
from audiencesync.sync import engine
from audiencesync.sync.snapshot import REMOVE, Snapshot
from audiencesync.sync.suppression import erasure_hash_files
from audiencesync.types import IdentifierType


def held_of(snapshot: Snapshot, hashes: dict[IdentifierType, Path]) -> dict[str, int]:
    """Per type, how many of the hashes the snapshot holds confirmed."""
    result = {}
    with duck.connect() as con:
        for kind, path in sorted(hashes.items()):
            confirmed = snapshot.confirmed_sql(kind, con)
            if confirmed is None:
                continue
            (number,) = con.execute(
                f"SELECT count(DISTINCT hash) FROM read_parquet('{path}') AS erased "
                f"SEMI JOIN ({confirmed}) AS confirmed USING (hash)"
            ).fetchone() or (0,)
            if number:
                result[kind.value] = int(number)
    return result


def erase_run(
    ctx: Context,
    run_id: int,
    erasure_id: int,
    run: engine.RunInput,
    destination: Destination,
    *,
    concurrency: int,
    report: engine.Reporter,
    cancelled: engine.CancelCheck,
) -> engine.RunOutcome:
    """Remove the erasure's hashes the export holds; the run's outcome (never raises for
    what a user or Snapchat can cause: errors are in ``outcome.errors``)."""
    outcome = engine.RunOutcome()
    snapshot = Snapshot.of(ctx, run.export_id, run.audience_id)
    work = snapshot.scratch(run_id)
    try:
        hashes = erasure_hash_files(ctx.home, erasure_id)
        if not hashes:
            raise ConflictError(
                f"the identifiers of erasure {erasure_id} are no longer kept.",
                fix=Fix("erase_again"),
            )
        planned: list[engine.PlannedFile] = []
        with outcome.timing("planning"), duck.connect() as con:
            outcome.phase = "planning"
            # Every hash of the erasure, held or not: an add Snapchat applied without
            # acknowledging it is missing from the snapshot, and a DELETE of an
            # identifier the audience lacks is harmless (docs/privacy.md, "Erasure").
            for kind, path in sorted(hashes.items()):
                target = work / f"{REMOVE}-{kind.value}.parquet"
                con.execute(
                    f"COPY (SELECT DISTINCT hash FROM read_parquet('{path}')) "
                    f"TO '{target}' (FORMAT parquet, COMPRESSION uncompressed)"
                )
                number = pq.ParquetFile(target).metadata.num_rows
                if number:
                    outcome.planned_removes[kind.value] = number
                    planned.append((REMOVE, kind, target, number))
        outcome.planned_all = True
        engine.send_and_confirm(
            destination, snapshot, run, planned, outcome,
            concurrency=concurrency, report=report, cancelled=cancelled,
        )  # fmt: skip
        outcome.phase = "done"
        return outcome
    except AudiencesyncError as error:
        outcome.errors.append(error.message)
        outcome.fatal = True
        return outcome
    finally:
        shutil.rmtree(work, ignore_errors=True)
