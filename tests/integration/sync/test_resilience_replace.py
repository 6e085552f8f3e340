"""A replace run killed half way (the audience emptied, the upload part done) is
finished by the next run: the audience ends exactly the segment's identifiers."""

from __future__ import annotations

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
from audiencesync.profiles import store
from audiencesync.profiles.synthetic import write_profiles
from audiencesync.segments import service as segments
from audiencesync.segments.rules import parse_rules
from audiencesync.sync import audience, exports, runs
from audiencesync.sync.exports import ExportSpec
from tests.integration.emulator.helpers import bearer_client, hashes, users_body
from tests.integration.sync.test_audience_readings import at_snapchat, expected
from tests.integration.sync.test_resilience import cli_env
from tests.snap_helpers import connect, emulator_settings

PROFILES = 3000
#: this checkout's code for the CLI processes (cli_env starts from an empty environment).
SOURCE = str(Path(__file__).resolve().parents[3] / "src")


def env_of(ctx: Context) -> dict[str, str]:
    return {**cli_env(ctx.settings), "PYTHONPATH": SOURCE}


@pytest.mark.slow
def test_a_replace_killed_half_way_is_finished_exactly_by_the_next_run(
    sqlite_ctx: Context,
    sqlite_actors: dict[Role, Actor],
    emulator: EmulatorHandle,
    tmp_path: Path,
) -> None:
    ctx, admin = sqlite_ctx, sqlite_actors[Role.ADMIN]
    ctx.settings = emulator_settings(ctx.settings, emulator)
    connect(ctx, admin, "Snap")
    write_profiles(tmp_path / "customers.parquet", PROFILES)
    store.import_file(ctx, admin, tmp_path / "customers.parquet", key="customer_id",
                      name="customers")  # fmt: skip
    segments.create_segment(
        ctx, admin, "all", dataset="customers",
        rules=parse_rules({"field": "customer_id", "op": "is not null"}),
    )  # fmt: skip
    audience_id = str(emulator.create_segment_directly("Everyone")["id"])
    exports.add_export(
        ctx, admin,
        ExportSpec(name="main", connection="Snap", segments=("all",), email_field="email",
                   phone_field="phone", default_country="GB", audience_id=audience_id),
    )  # fmt: skip
    assert runs.run_now(ctx, admin, "main").status == "succeeded"
    want = expected(ctx, admin)
    total = sum(len(v) for v in want.values())
    with bearer_client(emulator, emulator.obtain_tokens()["access_token"]) as api:
        api.post(f"/v1/segments/{audience_id}/users", json=users_body(hashes(4000, "extra")))
    assert runs.read_audience(ctx, admin, "main").drifted

    emulator.set_faults(latency_ms=120, only_kinds=["add_users"])
    process = subprocess.Popen(
        [sys.executable, "-m", "audiencesync", "exports", "run", "main", "--replace", "--yes"],
        env=env_of(ctx), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    killed_at = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        now = sum(emulator.member_counts(audience_id).values())
        if 0 < now < total // 2:  # emptied (it held total + 4,000), part re-sent
            process.send_signal(signal.SIGKILL)
            killed_at = now
            break
        time.sleep(0.01)
    output, _ = process.communicate(timeout=60)
    assert killed_at is not None, f"the replace ended before it was killed half way: {output}"
    assert sum(emulator.member_counts(audience_id).values()) < total
    emulator.clear_faults()
    time.sleep(1.2)  # the dead run's lease expires

    final = subprocess.run(
        [sys.executable, "-m", "audiencesync", "exports", "run", "main"],
        env=env_of(ctx), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert final.returncode == 0, final.stdout + final.stderr
    assert at_snapchat(emulator, audience_id) == want
    statuses = [r.status for r in runs.list_runs(ctx, admin, limit=10)]
    assert statuses[:2] == ["succeeded", "interrupted"], statuses
    summary = exports.get_export(ctx, admin, "main").audience
    assert summary is not None
    assert summary.identifiers_held == total
    # The resuming run's reading agrees with the export's history: the drift is gone.
    assert summary.drift is None
    assert summary.latest is not None
    assert summary.latest.upload_status == audience.COMPLETE
