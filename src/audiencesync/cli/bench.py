"""``audiencesync bench``: throughput and memory of a full and an incremental run."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import typer

from audiencesync.cli.walkthrough import connect_through_emulator, emulator_home, open_new_home
from audiencesync.control import users
from audiencesync.control.context import Context
from audiencesync.control.permissions import Actor
from audiencesync.emulator.testing import start_emulator_process
from audiencesync.errors import UserInputError
from audiencesync.profiles import linked, store
from audiencesync.profiles.synthetic import write_profiles
from audiencesync.segments import service as segments
from audiencesync.segments.rules import parse_rules
from audiencesync.sync import exports, runs
from audiencesync.sync.exports import ExportSpec
from audiencesync.sync.runs import RunView


def _run_isolated(ctx: Context, export: str) -> tuple[float, RunView, int]:
    """Run the export in a fresh process (``cli/bench_run.py``) so its peak RSS is its own."""
    figures = _isolated(ctx, [export])
    view = runs.get_run(ctx, users.resolve_actor(ctx, "admin"), int(figures["run_id"]))
    return float(figures["seconds"]), view, int(figures["peak_rss_bytes"])


def _members_isolated(ctx: Context, segment: str, fields: list[str]) -> dict[str, Any]:
    """Read the segment's members only, in a fresh process: the members phase alone."""
    figures = _isolated(ctx, ["--members", segment, *fields])
    return {
        "members": figures["members"],
        "seconds": round(float(figures["seconds"]), 3),
        "first_batch_seconds": round(float(figures["first_batch_seconds"] or 0.0), 3),
        "peak_rss_mb": round(int(figures["peak_rss_bytes"]) / 2**20),
    }


def _isolated(ctx: Context, args: list[str]) -> dict[str, Any]:
    settings = ctx.settings
    secret = settings.snapchat_client_secret
    env = {
        **os.environ,
        "AUDIENCESYNC_HOME": str(settings.resolved_home),
        "AUDIENCESYNC_SNAPCHAT_API_URL": settings.snapchat_api_url,
        "AUDIENCESYNC_SNAPCHAT_AUTH_URL": settings.snapchat_auth_url,
        "AUDIENCESYNC_SNAPCHAT_CLIENT_ID": settings.snapchat_client_id or "",
        "AUDIENCESYNC_SNAPCHAT_CLIENT_SECRET": secret.get_secret_value() if secret else "",
    }
    env.pop("AUDIENCESYNC_DATABASE_URL", None)
    if settings.spark_warehouse is not None:
        env["AUDIENCESYNC_SPARK_WAREHOUSE"] = str(settings.spark_warehouse)
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "audiencesync.cli.bench_run", *args],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"the timed run failed: {done.stderr.strip()[-500:]}")
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


class _Profiles:
    """Where the bench's profiles live: an imported file, a PostgreSQL table, a Spark table."""

    def __init__(self, kind: str, scratch: Path, postgres_url: str | None) -> None:
        self.kind = kind
        self.scratch = scratch
        self.postgres_url = postgres_url
        self.schema = f"bench_{uuid.uuid4().hex[:10]}"
        self.warehouse = scratch / "warehouse"
        if kind == "spark":
            (self.warehouse / "profiles").mkdir(parents=True)
            self.path = self.warehouse / "profiles" / "part-00000.parquet"
        else:
            self.path = scratch / "profiles.parquet"

    def knobs(self) -> dict[str, Any]:
        return {"spark_warehouse": self.warehouse} if self.kind == "spark" else {}

    def load(self, ctx: Context, admin: Actor) -> None:
        """Make dataset ``profiles`` from the file at ``self.path``."""
        if self.kind == "file":
            store.import_file(ctx, admin, self.path, key="customer_id", name="profiles")
            return
        if self.kind == "postgres":
            self._ingest()
            url, table = str(self.postgres_url), f"{self.schema}.profiles"
        else:
            url, table = "spark://local", "profiles"
        linked.link_url(ctx, admin, "profiles", url=url, table=table, key="customer_id")

    def refresh(self, ctx: Context, admin: Actor) -> None:
        """Dataset ``profiles`` follows the rewritten file."""
        if self.kind == "file":
            store.refresh(ctx, admin, "profiles")
            return
        if self.kind == "postgres":
            self._ingest()
        linked.refresh_link(ctx, admin, "profiles")

    def _ingest(self) -> None:
        import adbc_driver_postgresql.dbapi as adbc_pg

        with adbc_pg.connect(_libpq(str(self.postgres_url))) as connection:
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
                cursor.execute(f"DROP TABLE IF EXISTS {self.schema}.profiles")
                reader = pq.ParquetFile(self.path).iter_batches(batch_size=200_000)
                first = next(reader)
                batches = pa.RecordBatchReader.from_batches(
                    first.schema, itertools.chain([first], reader)
                )
                cursor.adbc_ingest("profiles", batches, mode="create", db_schema_name=self.schema)
                cursor.execute(f"ALTER TABLE {self.schema}.profiles ADD PRIMARY KEY (customer_id)")
                cursor.execute(f"ANALYZE {self.schema}.profiles")
            connection.commit()

    def drop(self) -> None:
        if self.kind != "postgres":
            return
        import adbc_driver_postgresql.dbapi as adbc_pg

        with adbc_pg.connect(_libpq(str(self.postgres_url))) as connection:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
            connection.commit()


def _libpq(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}://{rest}"


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
        "phase_seconds": counts.get("seconds"),
    }


def bench(
    profiles: Annotated[
        int, typer.Option("--profiles", help="How many synthetic profiles.")
    ] = 1_000_000,
    churn: Annotated[
        float, typer.Option("--churn", help="Share replaced before the second run.")
    ] = 0.01,
    identifiers: Annotated[
        str,
        typer.Option("--identifiers", help="Mapped types: email, phone, maid (comma-separated)."),
    ] = "email,phone,maid",
    source_kind: Annotated[
        str,
        typer.Option(
            "--source",
            help="Where the profiles live: file (imported), postgres (linked), spark (linked).",
        ),
    ] = "file",
    postgres_url: Annotated[
        str | None,
        typer.Option(
            "--postgres-url",
            envvar="AUDIENCESYNC_BENCH_POSTGRES_URL",
            help="PostgreSQL database --source postgres loads the profiles into (a schema "
            "of its own, dropped afterwards).",
        ),
    ] = None,
) -> None:
    """Time a full and an incremental run on the emulator; print one JSON object.

    Each run executes in a fresh process, so ``peak_rss_mb`` is the run's own peak
    (the import and set-up peak is reported apart); the emulator runs in its own process.
    """
    kinds = {k.strip() for k in identifiers.split(",") if k.strip()}
    if not kinds or not kinds <= {"email", "phone", "maid"}:
        raise UserInputError("--identifiers takes email, phone and/or maid, comma-separated.")
    if source_kind not in ("file", "postgres", "spark"):
        raise UserInputError("--source takes file, postgres or spark.")
    if source_kind == "postgres" and not postgres_url:
        raise UserInputError(
            "--source postgres needs --postgres-url postgresql://user@host:5432/database "
            "(or AUDIENCESYNC_BENCH_POSTGRES_URL)."
        )
    fields = [
        f for k, f in (("email", "email"), ("phone", "phone"), ("maid", "mobile_ad_id"))
        if k in kinds
    ]  # fmt: skip
    scratch = Path(tempfile.mkdtemp(prefix="audiencesync-bench-"))
    where = _Profiles(source_kind, scratch, postgres_url)
    try:
        source = write_profiles(where.path, profiles)
        with start_emulator_process(
            "--auto-approve", "--processing-seconds", "0", timeout=120
        ) as emulator:
            home = emulator_home(scratch / "home", emulator, **where.knobs())
            ctx, admin, _ = open_new_home(home)
            try:
                started = time.perf_counter()
                where.load(ctx, admin)
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
                        email_field="email" if "email" in kinds else None,
                        phone_field="phone" if "phone" in kinds else None,
                        maid_field="mobile_ad_id" if "maid" in kinds else None,
                        default_country="GB", create_audience=True,
                    ),
                )  # fmt: skip
                full_seconds, full, full_peak = _run_isolated(ctx, "bench")
                members_only = _members_isolated(ctx, "everyone", fields)
                write_profiles(source, profiles, churn_from=max(1, int(profiles * churn)))
                started = time.perf_counter()
                where.refresh(ctx, admin)
                refresh_seconds = time.perf_counter() - started
                incremental_seconds, incremental, incremental_peak = _run_isolated(ctx, "bench")
                emulator_rss = psutil.Process(emulator.process.pid).memory_info().rss
            finally:
                ctx.close()
        floor = _floor(source)
        setup_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        report = {
            "profiles": profiles,
            "source": source_kind,
            "identifiers": sorted(kinds),
            "full_run": _run_figures(full, full_seconds, profiles),
            "incremental_run": {
                "churn": churn,
                **_run_figures(incremental, incremental_seconds, profiles),
            },
            "import_seconds": round(import_seconds, 3),
            "refresh_seconds": round(refresh_seconds, 3),
            "peak_rss_mb": round(max(full_peak, incremental_peak) / 2**20),
            "peak_rss_mb_full_run": round(full_peak / 2**20),
            "peak_rss_mb_incremental_run": round(incremental_peak / 2**20),
            "peak_rss_mb_import_and_setup": round(setup_peak / 2**20),
            "emulator_rss_mb": round(emulator_rss / 2**20),
            # The members phase alone (a fresh process reading the segment's members).
            "members_only": members_only,
            "floor": {
                "bare_hashlib_seconds": round(floor, 3),
                "full_run_over_floor": round(full_seconds / floor, 2) if floor else None,
            },
        }
    finally:
        where.drop()
        shutil.rmtree(scratch, ignore_errors=True)
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
