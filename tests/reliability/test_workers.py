"""Two and four worker processes on one PostgreSQL database under bursts of on-demand runs.

Bursts of simultaneous ``POST /exports/NAME/run`` over HTTP, for several exports, while
``audiencesync worker`` processes share the queue and the emulator fails some calls.
Exactly one request per idle export queues a run, the others get its id; no answer is a
5xx; no two runs of one export ever overlap; every run ends in a terminal status; and
every audience ends exact.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from audiencesync.api import auth
from audiencesync.control.context import Context
from audiencesync.control.models import Role
from audiencesync.control.permissions import Actor
from audiencesync.emulator.testing import EmulatorHandle, running_emulator
from audiencesync.profiles import store
from audiencesync.profiles.synthetic import write_profiles
from audiencesync.segments import service as segments
from audiencesync.segments.rules import parse_rules
from audiencesync.settings import Settings
from audiencesync.sync import exports, runs
from audiencesync.sync.exports import ExportSpec
from audiencesync.sync.runs import TERMINAL
from tests.conftest import _initialised, make_actors
from tests.integration.api.conftest import AppServer
from tests.reliability.figures import record
from tests.reliability.test_soak import intended
from tests.snap_helpers import connect, emulator_settings

BURSTS = int(os.environ.get("AUDIENCESYNC_SOAK_BURSTS", "3"))
EXPORTS = 3
RACERS = 5
PROFILES = 1500
MIN_AGE = 30
FAULTS = {"fail_429": 0.03, "fail_500": 0.02, "fail_503": 0.02, "drop_after": 0.02}


@pytest.fixture
def pg_home(tmp_path: Path, postgres_schema_url: str) -> Iterator[tuple[Context, EmulatorHandle]]:
    with running_emulator(rate_limit=0, seed=7, latency_ms=2) as emulator:
        settings = Settings(
            home=tmp_path / "home", database_url=postgres_schema_url, secret_key=None, user=None
        )
        ctx = _initialised(emulator_settings(settings, emulator))
        try:
            yield ctx, emulator
        finally:
            ctx.close()


def _worker_env(ctx: Context) -> dict[str, str]:
    settings = ctx.settings
    secret = settings.snapchat_client_secret
    assert secret is not None
    assert settings.database_url is not None
    return {
        "AUDIENCESYNC_HOME": str(settings.resolved_home),
        "AUDIENCESYNC_DATABASE_URL": settings.database_url,
        "AUDIENCESYNC_SNAPCHAT_API_URL": settings.snapchat_api_url,
        "AUDIENCESYNC_SNAPCHAT_AUTH_URL": settings.snapchat_auth_url,
        "AUDIENCESYNC_SNAPCHAT_CLIENT_ID": settings.snapchat_client_id or "",
        "AUDIENCESYNC_SNAPCHAT_CLIENT_SECRET": secret.get_secret_value(),
        "AUDIENCESYNC_BATCH_SIZE": "100",
        "AUDIENCESYNC_RUN_LEASE_SECONDS": "5",
        "AUDIENCESYNC_HTTP_BACKOFF_BASE_SECONDS": "0.01",
        "AUDIENCESYNC_HTTP_BACKOFF_MAX_SECONDS": "0.1",
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }


def _drain(ctx: Context, admin: Actor, *, timeout: float) -> list[runs.RunView]:
    """Every run, once all of them have ended (the workers drained the queue)."""
    deadline = time.monotonic() + timeout
    while True:
        views = runs.list_runs(ctx, admin, limit=10**6)
        if all(v.status in TERMINAL for v in views):
            return views
        assert time.monotonic() < deadline, Counter(v.status for v in views)
        time.sleep(0.1)


def _overlaps(views: list[runs.RunView]) -> int:
    """Pairs of runs of one export whose [start, end] intervals overlap."""
    found = 0
    by_export: dict[str, list[runs.RunView]] = {}
    for view in views:
        if view.started_at is not None:
            by_export.setdefault(view.export, []).append(view)
    for started in by_export.values():
        started.sort(key=lambda v: v.started_at or v.queued_at)
        for earlier, later in itertools.pairwise(started):
            assert earlier.finished_at is not None
            assert later.started_at is not None
            if later.started_at < earlier.finished_at:
                found += 1
    return found


@pytest.mark.slow
@pytest.mark.parametrize("workers", [2, 4])
def test_bursts_of_runs_on_shared_workers(
    pg_home: tuple[Context, EmulatorHandle], tmp_path: Path, workers: int
) -> None:
    ctx, emulator = pg_home
    admin = make_actors(ctx)[Role.ADMIN]
    connect(ctx, admin, "Snap")
    source = write_profiles(tmp_path / "customers.parquet", PROFILES)
    store.import_file(ctx, admin, source, key="customer_id", name="customers")
    segments.create_segment(
        ctx, admin, "target", dataset="customers",
        rules=parse_rules({"field": "age", "op": ">=", "value": MIN_AGE}),
    )  # fmt: skip
    audiences = {}
    for number in range(EXPORTS):
        name = f"e{number}"
        audiences[name] = str(emulator.create_segment_directly(name)["id"])
        exports.add_export(
            ctx, admin,
            ExportSpec(name=name, connection="Snap", segments=("target",), email_field="email",
                       phone_field="phone", default_country="GB", audience_id=audiences[name]),
        )  # fmt: skip
    emulator.set_faults(clear=True, seed=11, **FAULTS)
    token = auth.create_token(ctx, admin, "bursts").token
    logs = [tmp_path / f"worker{n}.log" for n in range(workers)]
    processes = []
    for log in logs:
        with log.open("w") as stderr:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "audiencesync", "worker", "--idle-seconds", "0.05"],
                    env=_worker_env(ctx),
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                )
            )
    server = AppServer(ctx)
    answers: Counter[int] = Counter()
    rng = random.Random(workers)
    try:

        def refused_for(run_id: int) -> str:
            return runs.get_run(ctx, admin, run_id).export

        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as client:
            for _ in range(BURSTS):
                start = threading.Barrier(RACERS * EXPORTS)

                def post(name: str, start: threading.Barrier = start) -> httpx.Response:
                    start.wait()
                    return client.post(f"/api/v1/exports/{name}/run")

                names = [n for n in audiences for _ in range(RACERS)]
                with ThreadPoolExecutor(len(names)) as pool:
                    burst = list(pool.map(post, names))
                for name in audiences:
                    mine = [a for a, n in zip(burst, names, strict=True) if n == name]
                    # A refusal names a run of this very export (one that held it then;
                    # it may have ended and another been accepted since, within the burst).
                    for answer in mine:
                        if answer.status_code == 409:
                            assert refused_for(answer.json()["run"]) == name, answer.text
                for answer in burst:
                    answers[answer.status_code] += 1
                if rng.random() < 0.5:
                    _drain(ctx, admin, timeout=120)  # the next burst finds the exports idle
                else:
                    time.sleep(rng.uniform(0.0, 1.0))  # the next burst meets running runs
        views = _drain(ctx, admin, timeout=300)
    finally:
        server.stop()
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise
    assert set(answers) <= {202, 409}, answers
    statuses = Counter(v.status for v in views)
    overlaps = _overlaps(views)
    # The last word for each export: no faults, one more run, and the audience is exact.
    emulator.clear_faults()
    wanted = intended(source, MIN_AGE)
    mismatches = 0
    compared = 0
    for name, audience in audiences.items():
        final = runs.run_now(ctx, admin, name)
        assert final.status == "succeeded", final.errors
        for schema, hashes in wanted.items():
            found = emulator.members(audience, schema)
            compared += len(hashes | found)
            mismatches += found != hashes
    tracebacks = sum("Traceback" in log.read_text() for log in logs)
    figures: dict[str, Any] = {
        "workers": workers, "bursts": BURSTS, "exports": EXPORTS,
        "requests": sum(answers.values()), "answers": dict(answers),
        "server_errors": sum(n for status, n in answers.items() if status >= 500),
        "runs": len(views), "run_statuses": dict(statuses), "overlapping_runs": overlaps,
        "identifiers compared": compared, "mismatches": mismatches,
        "worker tracebacks": tracebacks,
    }  # fmt: skip
    record(f"workers-{workers}", figures)
    assert overlaps == 0, figures
    assert mismatches == 0, figures
    assert tracebacks == 0, figures
    assert answers[202] >= EXPORTS, figures
