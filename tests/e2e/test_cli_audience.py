"""The audience as a user sees it on the command line: a run whose matching is pending,
`exports audience NAME`, `exports show`, drift and `exports run --replace`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from audiencesync.control.context import Context
from audiencesync.control.models import Role
from audiencesync.control.permissions import Actor
from audiencesync.emulator.testing import EmulatorHandle, running_emulator
from audiencesync.sync import exports
from audiencesync.sync.exports import ExportSpec
from tests.cli_runner import run_cli
from tests.integration.emulator.helpers import bearer_client, hashes, users_body
from tests.snap_helpers import connect, emulator_settings, load_profiles


@pytest.fixture
def emulator() -> Iterator[EmulatorHandle]:
    with running_emulator(processing_seconds=600) as handle:
        yield handle


@pytest.fixture
def home(
    sqlite_ctx: Context,
    sqlite_actors: dict[Role, Actor],
    emulator: EmulatorHandle,
    tmp_path: Path,
) -> Path:
    ctx, admin = sqlite_ctx, sqlite_actors[Role.ADMIN]
    ctx.settings = emulator_settings(ctx.settings, emulator)
    connect(ctx, admin, "Snap")
    load_profiles(ctx, admin, tmp_path)
    audience = str(emulator.create_segment_directly("Customers")["id"])
    exports.add_export(
        ctx, admin,
        ExportSpec(name="main", connection="Snap", segments=("everyone",), email_field="email",
                   phone_field="phone", audience_id=audience),
    )  # fmt: skip
    return ctx.settings.resolved_home


def env_of(emulator: EmulatorHandle) -> dict[str, str]:
    return {
        "AUDIENCESYNC_SNAPCHAT_API_URL": emulator.api_url,
        "AUDIENCESYNC_SNAPCHAT_AUTH_URL": emulator.auth_url,
        "AUDIENCESYNC_SNAPCHAT_CLIENT_ID": emulator.client_id,
        "AUDIENCESYNC_SNAPCHAT_CLIENT_SECRET": emulator.client_secret,
    }


def test_a_run_says_matching_is_pending_then_the_audience_command_reads_the_matched_size(
    home: Path, emulator: EmulatorHandle
) -> None:
    env = env_of(emulator)
    ran = run_cli("exports", "run", "main", home=home, env=env)
    assert ran.code == 0, ran.output
    assert "matched size pending (Snapchat upload PROCESSING)" in ran.stdout
    assert "about 0 matched users" not in ran.stdout
    shown = run_cli("exports", "show", "main", home=home, env=env).stdout
    assert "identifiers held: 6" in shown  # 3 emails + 3 phones confirmed at Snapchat
    assert "matched size pending" in shown
    assert sum(emulator.member_counts(exports_audience(home, env)).values()) == 6

    emulator.complete_matching()
    read = run_cli("exports", "audience", "main", home=home, env=env)
    assert read.code == 0, read.output
    matched = round(6 * 0.7)
    assert f"about {matched:,} matched users, upload COMPLETE" in read.stdout
    assert f"match rate: {matched / 6:.1%} of the identifiers held" in read.stdout
    assert "DRIFTED" not in read.stdout


def exports_audience(home: Path, env: dict[str, str]) -> str:
    shown = run_cli("exports", "show", "main", home=home, env=env).stdout
    line = next(line for line in shown.splitlines() if line.startswith("audience: "))
    return line.split()[1]


def test_drift_is_shown_and_replace_repairs_it_from_the_command_line(
    home: Path, emulator: EmulatorHandle
) -> None:
    env = env_of(emulator)
    emulator.set_settings(processing_seconds=0)
    assert run_cli("exports", "run", "main", home=home, env=env).code == 0
    audience = exports_audience(home, env)
    with bearer_client(emulator, emulator.obtain_tokens()["access_token"]) as api:
        api.post(f"/v1/segments/{audience}/users", json=users_body(hashes(500, "extra")))
    read = run_cli("exports", "audience", "main", home=home, env=env).stdout
    assert "AUDIENCE MAY HAVE DRIFTED: Snapchat reports about 354 matched users" in read
    assert "exports run main --replace" in read
    refused = run_cli("exports", "run", "main", "--replace", "--dry-run", home=home, env=env)
    assert refused.code != 0
    assert "cannot be a dry run" in refused.stderr
    assert "Traceback" not in refused.output
    # A replace empties the audience: with no --yes and no terminal to ask on, refused.
    before = sum(emulator.member_counts(audience).values())
    unconfirmed = run_cli("exports", "run", "--all", "--replace", home=home, env=env)
    assert unconfirmed.code != 0
    assert "Traceback" not in unconfirmed.output
    assert sum(emulator.member_counts(audience).values()) == before
    replaced = run_cli("exports", "run", "main", "--replace", "--yes", home=home, env=env)
    assert replaced.code == 0, replaced.output
    assert "sent: emptied the audience (it held " in replaced.stdout
    assert ", then added " in replaced.stdout
    assert sum(emulator.member_counts(audience).values()) == 6
    shown = run_cli("exports", "show", "main", home=home, env=env).stdout
    assert "DRIFTED" not in shown
    assert "about 4 matched users" in shown
