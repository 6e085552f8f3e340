"""``audiencesync bench``: throughput and memory of a full and an incremental run."""

from __future__ import annotations

import hashlib
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import psutil
import pyarrow.parquet as pq
import typer

from audiencesync.cli.walkthrough import connect_through_emulator, emulator_home, open_new_home
from audiencesync.emulator.testing import start_emulator_process
from audiencesync.profiles import store
from audiencesync.profiles.synthetic import write_profiles
from audiencesync.segments import service as segments
from audiencesync.segments.rules import parse_rules
from audiencesync.sync import exports, runs
from audiencesync.sync.exports import ExportSpec
from audiencesync.sync.runs import RunView


def _floor(source: Path) -> float:
    """Seconds of a bare hashlib loop over the same emails (lower/trim excluded)."""
    emails = [e for e in pq.read_table(source, columns=["email"]).column(0).to_pylist() if e]
    started = time.perf_counter()
    for email in emails:
        hashlib.sha256(email.encode()).hexdigest()
    return time.perf_counter() - started


def _run_figures(view: RunView, seconds: float, profiles: int) -> dict[str, Any]:
    counts = view.counts
    return {
        "status": view.status,
        "seconds": round(seconds, 3),
        "profiles_per_second": round(profiles / seconds) if seconds else None,
        "members": counts.get("members"),
        "added": counts.get("added"),
        "removed": counts.get("removed"),
        "requests": counts.get("requests"),
        "bytes_sent": counts.get("bytes_sent"),
    }


def bench(
    profiles: Annotated[
        int, typer.Option("--profiles", help="How many synthetic profiles.")
    ] = 1_000_000,
    churn: Annotated[
        float, typer.Option("--churn", help="Share replaced before the second run.")
    ] = 0.01,
) -> None:
    """Time a full and an incremental run on the emulator; print one JSON object."""
    scratch = Path(tempfile.mkdtemp(prefix="audiencesync-bench-"))
    try:
        source = write_profiles(scratch / "profiles.parquet", profiles)
        with start_emulator_process("--auto-approve", "--processing-seconds", "0") as emulator:
            ctx, admin, _ = open_new_home(emulator_home(scratch / "home", emulator))
            try:
                started = time.perf_counter()
                store.import_file(ctx, admin, source, key="customer_id", name="profiles")
                import_seconds = time.perf_counter() - started
                segments.create_segment(
                    ctx, admin, "everyone", dataset="profiles",
                    rules=parse_rules({"field": "customer_id", "op": "is not null"}),
                )  # fmt: skip
                connection = connect_through_emulator(ctx, admin, "bench")
                exports.add_export(
                    ctx, admin,
                    ExportSpec(
                        name="bench", connection=connection.name, segments=("everyone",),
                        email_field="email", phone_field="phone", maid_field="mobile_ad_id",
                        default_country="GB", create_audience=True,
                    ),
                )  # fmt: skip
                started = time.perf_counter()
                full = runs.run_now(ctx, admin, "bench")
                full_seconds = time.perf_counter() - started

                write_profiles(source, profiles, churn_from=max(1, int(profiles * churn)))
                started = time.perf_counter()
                store.refresh(ctx, admin, "profiles")
                refresh_seconds = time.perf_counter() - started
                started = time.perf_counter()
                incremental = runs.run_now(ctx, admin, "bench")
                incremental_seconds = time.perf_counter() - started
                emulator_rss = psutil.Process(emulator.process.pid).memory_info().rss
            finally:
                ctx.close()
        floor = _floor(source)
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        report = {
            "profiles": profiles,
            "full_run": _run_figures(full, full_seconds, profiles),
            "incremental_run": {
                "churn": churn,
                **_run_figures(incremental, incremental_seconds, profiles),
            },
            "import_seconds": round(import_seconds, 3),
            "refresh_seconds": round(refresh_seconds, 3),
            "peak_rss_mb": round(peak_kb / 1024),
            "emulator_rss_mb": round(emulator_rss / 2**20),
            "floor": {
                "bare_hashlib_seconds": round(floor, 3),
                "full_run_over_floor": round(full_seconds / floor, 2) if floor else None,
            },
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
