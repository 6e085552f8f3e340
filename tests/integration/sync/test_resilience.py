"""A run killed at any instant, then run again, leaves the audience exactly right."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audiencesync.control.context import Context
from audiencesync.control.models import Role
from audiencesync.control.permissions import Actor
from audiencesync.emulator.testing import EmulatorHandle
from audiencesync.identifiers import hash_batch
from audiencesync.profiles import store
from audiencesync.profiles.synthetic import write_profiles
from audiencesync.segments import service as segments
from audiencesync.segments.rules import parse_rules
from audiencesync.settings import Settings
from audiencesync.sync import exports, runs
from audiencesync.sync.exports import ExportSpec
from audiencesync.sync.snapshot import Snapshot
from audiencesync.types import IdentifierType
from tests.snap_helpers import connect

PROFILES = 6000


def cli_env(settings: Settings) -> dict[str, str]:
    secret = settings.snapchat_client_secret
    assert secret is not None
    return {
        "AUDIENCESYNC_HOME": str(settings.resolved_home),
        "AUDIENCESYNC_SNAPCHAT_API_URL": settings.snapchat_api_url,
        "AUDIENCESYNC_SNAPCHAT_AUTH_URL": settings.snapchat_auth_url,
        "AUDIENCESYNC_SNAPCHAT_CLIENT_ID": settings.snapchat_client_id or "",
        "AUDIENCESYNC_SNAPCHAT_CLIENT_SECRET": secret.get_secret_value(),
        "AUDIENCESYNC_BATCH_SIZE": "250",
        "AUDIENCESYNC_RUN_LEASE_SECONDS": "1",
        "AUDIENCESYNC_HTTP_BACKOFF_BASE_SECONDS": "0.01",
        "PATH": "/usr/bin:/bin",
        # The code under test, also when it is a worktree on the path and not the install.
        **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}),
        **storage_env(settings),
    }


def storage_env(settings: Settings) -> dict[str, str]:
    """The shared storage of ``settings`` for a CLI process (with the bucket's credentials,
    which the S3 test server put in this process's environment)."""
    if not settings.storage_url:
        return {}
    aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    return {
        **aws,
        "AUDIENCESYNC_STORAGE_URL": settings.storage_url,
        "AUDIENCESYNC_STORAGE_ENDPOINT_URL": settings.storage_endpoint_url or "",
    }


def expected(ctx: Context, actor: Actor, kind: IdentifierType, field: str) -> set[str]:
    table = store.sample(ctx, actor, "customers", limit=10**9)
    hashed = hash_batch(kind, table.column(field).combine_chunks().cast("string"))
    return set(hashed.hashes.drop_null().to_pylist())


def _wait_until_running(
    ctx: Context, admin: Actor, process: subprocess.Popen[bytes], after: int
) -> None:
    """Until the process's own run (newer than run ``after``) is running, or it exited."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if any(r.id > after and r.status == "running" for r in runs.list_runs(ctx, admin, limit=5)):
            return
        time.sleep(0.05)


@pytest.mark.slow
def test_sigkill_at_random_points_then_rerun_is_exact(
    sqlite_ctx: Context,
    sqlite_actors: dict[Role, Actor],
    emulator: EmulatorHandle,
    tmp_path: Path,
) -> None:
    ctx, admin = sqlite_ctx, sqlite_actors[Role.ADMIN]
    from tests.snap_helpers import emulator_settings

    ctx.settings = emulator_settings(ctx.settings, emulator)
    connect(ctx, admin, "Snap")
    source = write_profiles(tmp_path / "customers.parquet", PROFILES)
    store.import_file(ctx, admin, source, key="customer_id", name="customers")
    segments.create_segment(
        ctx, admin, "all", dataset="customers",
        rules=parse_rules({"field": "customer_id", "op": "is not null"}),
    )  # fmt: skip
    audience = str(emulator.create_segment_directly("Everyone")["id"])
    exports.add_export(
        ctx, admin,
        ExportSpec(name="main", connection="Snap", segments=("all",), email_field="email",
                   phone_field="phone", default_country="GB", audience_id=audience,
                   max_removal_share=1.0),  # the churn removes a third: not the guard's test
    )  # fmt: skip
    env = cli_env(ctx.settings)
    rng = random.Random(20261128)
    kills = 0
    for attempt in range(8):
        last = max((r.id for r in runs.list_runs(ctx, admin, limit=1)), default=0)
        process = subprocess.Popen(
            [sys.executable, "-m", "audiencesync", "exports", "run", "main"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        # Kill at a random instant of the run itself: wait until it is running (a loaded
        # machine can take seconds just to start Python), then a random share of a run.
        _wait_until_running(ctx, admin, process, last)
        time.sleep(rng.uniform(0.0, 1.2))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=60)
        time.sleep(1.2)  # let the dead worker's lease expire
        if attempt == 4:
            # Change the data half way: removals must be exact too.
            write_profiles(source, PROFILES, churn_from=PROFILES // 3)
            store.refresh(ctx, admin, "customers")
    assert kills >= 4, f"only {kills} of 8 runs were still running when killed"
    final = subprocess.run(
        [sys.executable, "-m", "audiencesync", "exports", "run", "main"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert final.returncode == 0, final.stdout + final.stderr
    emails = expected(ctx, admin, IdentifierType.EMAIL, "email")
    members = emulator.members(audience, "EMAIL_SHA256")
    assert members == emails, (
        f"{len(emails - members)} missing and {len(members - emails)} extra at Snapchat; "
        f"runs: {[(r.id, r.status, r.errors) for r in runs.list_runs(ctx, admin, limit=50)]}; "
        f"the last run said: {final.stdout}"
    )
    assert len(emails) > PROFILES // 2
    statuses = {r.status for r in runs.list_runs(ctx, admin, limit=50)}
    assert "interrupted" in statuses, statuses
    counts = Snapshot.of(ctx, 1, audience).counts()
    assert counts["email"] == len(emails)
    assert counts["phone"] == len(emulator.members(audience, "PHONE_SHA256"))
