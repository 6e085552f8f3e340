"""The removal guard on the emulator: mass removals wait for approval, then go out exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from audiencesync.control import audit
from audiencesync.control.context import Context
from audiencesync.control.models import Role
from audiencesync.control.permissions import Actor
from audiencesync.emulator.testing import EmulatorHandle
from audiencesync.errors import ConflictError, PermissionDeniedError
from audiencesync.identifiers import hash_value
from audiencesync.profiles import store
from audiencesync.segments import service as segments
from audiencesync.segments.rules import parse_rules
from audiencesync.sync import exports, runs
from audiencesync.sync.exports import ExportSpec
from audiencesync.sync.snapshot import Snapshot
from audiencesync.types import IdentifierType
from tests.cli_runner import run_cli
from tests.integration.sync.test_resilience import cli_env
from tests.snap_helpers import connect

EMAIL = "EMAIL_SHA256"


def people(rows: range) -> str:
    lines = ["customer_id,email,country"]
    lines += [f"{i},person{i}@example.com,{'GB' if i % 2 else 'US'}" for i in rows]
    return "\n".join(lines) + "\n"


def hashes(rows: range) -> set[str]:
    found = {hash_value(IdentifierType.EMAIL, f"person{i}@example.com") for i in rows}
    return {h for h in found if h is not None}


@pytest.fixture
def admin(actors: dict[Role, Actor]) -> Actor:
    return actors[Role.ADMIN]


@pytest.fixture
def source(ctx: Context, admin: Actor, emulator: EmulatorHandle, tmp_path: Path) -> Path:
    connect(ctx, admin, "Snap", share=True)
    path = tmp_path / "people.csv"
    path.write_text(people(range(1, 51)))
    store.import_file(ctx, admin, path, key="customer_id", name="people")
    segments.create_segment(
        ctx, admin, "gb", dataset="people",
        rules=parse_rules({"field": "country", "op": "=", "value": "GB"}),
    )  # fmt: skip
    audience = str(emulator.create_segment_directly("People")["id"])
    exports.add_export(
        ctx, admin,
        ExportSpec(name="gb", connection="Snap", segments=("gb",), email_field="email",
                   audience_id=audience),
    )  # fmt: skip
    first = runs.run_now(ctx, admin, "gb")
    assert first.status == "succeeded", first.errors
    return path


def audience_of(ctx: Context, admin: Actor) -> str:
    return exports.get_export(ctx, admin, "gb").audience_id


def reimport(ctx: Context, admin: Actor, path: Path, text: str) -> None:
    path.write_text(text)
    store.refresh(ctx, admin, "people")


def test_an_emptied_segment_holds_every_removal_until_approved(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, source: Path
) -> None:
    audience = audience_of(ctx, admin)
    before = emulator.members(audience, EMAIL)
    assert before == hashes(range(1, 51, 2))  # the 25 GB people
    reimport(ctx, admin, source, people(range(2, 51, 2)))  # nobody in GB any more
    held = runs.run_now(ctx, admin, "gb")
    assert held.status == "needs_approval"
    assert emulator.members(audience, EMAIL) == before  # nothing removed
    guard = held.counts["guard"]
    assert guard["reason"] == "segments_empty"
    assert guard["held"] == 25
    assert guard["held_removes"] == {"email": 25}
    assert held.counts["removed"] == {}
    assert held.counts["planned_removes"] == {"email": 25}
    assert held.message is not None
    assert "25 removal(s), 100% of the 25 identifiers" in held.message
    assert "segments now match nobody" in held.message
    # The plan is kept on disk, with the snapshot, until approved.
    snapshot = Snapshot.of(ctx, 1, audience)
    assert set(snapshot.held_removals(held.id)) == {IdentifierType.EMAIL}

    approval = runs.approve_now(ctx, admin, held.id)
    assert approval.status == "succeeded", approval.errors
    assert approval.approves_run == held.id
    assert approval.counts["removed"] == {"email": 25}
    assert emulator.members(audience, EMAIL) == set()
    assert runs.get_run(ctx, admin, held.id).status == "approved"
    assert snapshot.held_removals(held.id) == {}
    assert snapshot.counts() == {}
    actions = [e.action for e in audit.list_entries(ctx, admin, target="export:gb")]
    assert "run.approve" in actions
    with pytest.raises(ConflictError, match="not waiting for approval"):
        runs.approve_now(ctx, admin, held.id)


def test_removals_above_the_share_are_held_while_adds_go_out(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, source: Path
) -> None:
    audience = audience_of(ctx, admin)
    # 10 of 25 GB people leave (40% > 20%), three new ones arrive.
    reimport(ctx, admin, source, people(range(21, 57)))
    held = runs.run_now(ctx, admin, "gb")
    assert held.status == "needs_approval"
    assert held.counts["guard"]["reason"] == "share_above_threshold"
    assert held.counts["added"] == {"email": 3}
    assert emulator.members(audience, EMAIL) == hashes(range(1, 57, 2))
    assert held.counts["confirmed"] == {"email": len(hashes(range(1, 57, 2)))}
    assert "more than the export's maximum removal share of 20%" in (held.message or "")
    # Dismissed: never sent; the next run plans again and is guarded again.
    dismissed = runs.dismiss_run(ctx, admin, held.id)
    assert dismissed.status == "dismissed"
    assert emulator.members(audience, EMAIL) == hashes(range(1, 57, 2))
    again = runs.run_now(ctx, admin, "gb")
    assert again.status == "needs_approval"
    # A later run supersedes a held one: the held removals are forgotten.
    exports.update_export(
        ctx, admin, "gb",
        ExportSpec(name="gb", connection="Snap", segments=("gb",), email_field="email",
                   audience_id=audience, max_removal_share=0.5),
    )  # fmt: skip
    allowed = runs.run_now(ctx, admin, "gb")
    assert allowed.status == "succeeded", allowed.errors
    assert runs.get_run(ctx, admin, again.id).status == "dismissed"
    assert "superseded by run" in runs.get_run(ctx, admin, again.id).errors[-1]
    assert Snapshot.of(ctx, 1, audience).held_removals(again.id) == {}
    assert emulator.members(audience, EMAIL) == hashes(range(21, 57, 2))
    assert allowed.counts["confirmed"] == {"email": len(hashes(range(21, 57, 2)))}
    assert allowed.counts["confirmed"] == Snapshot.of(ctx, 1, audience).counts()


def test_a_dry_run_reports_the_guard_and_holds_nothing(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, source: Path
) -> None:
    reimport(ctx, admin, source, people(range(2, 51, 2)))
    dry = runs.run_now(ctx, admin, "gb", dry_run=True)
    assert dry.status == "succeeded"
    assert dry.counts["guard"]["reason"] == "segments_empty"
    assert "would hold 25 removal(s)" in (dry.message or "")
    assert Snapshot.of(ctx, 1, audience_of(ctx, admin)).held_removals(dry.id) == {}


def test_viewers_cannot_approve_and_an_approval_killed_half_way_is_approved_again(
    ctx: Context,
    actors: dict[Role, Actor],
    admin: Actor,
    emulator: EmulatorHandle,
    source: Path,
) -> None:
    audience = audience_of(ctx, admin)
    reimport(ctx, admin, source, people(range(2, 51, 2)))
    held = runs.run_now(ctx, admin, "gb")
    assert held.status == "needs_approval"
    with pytest.raises(PermissionDeniedError):
        runs.approve_now(ctx, actors[Role.VIEWER], held.id)
    # Batches of 10: the first removal is acknowledged, then Snapchat fails for good.
    ctx.settings = ctx.settings.model_copy(
        update={"batch_size": 10, "http_max_attempts": 2, "http_max_concurrency": 1}
    )
    emulator.set_faults(script=["pass", *["500"] * 12])
    broken = runs.approve_now(ctx, admin, held.id)
    assert broken.status in ("partially_succeeded", "failed"), broken.errors
    assert broken.counts["removed"] == {"email": 10}
    assert runs.get_run(ctx, admin, held.id).status == "needs_approval"
    assert len(emulator.members(audience, EMAIL)) == 15
    emulator.clear_faults()
    # A contributor on the shared connection may approve; only the rest is sent.
    finished = runs.approve_now(ctx, actors[Role.CONTRIBUTOR], held.id)
    assert finished.status == "succeeded", finished.errors
    assert finished.counts["planned_removes"] == {"email": 15}
    assert emulator.members(audience, EMAIL) == set()
    assert runs.get_run(ctx, admin, held.id).status == "approved"


def test_the_cli_approves_a_held_run_from_another_process(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, source: Path
) -> None:
    audience = audience_of(ctx, admin)
    reimport(ctx, admin, source, people(range(2, 51, 2)))
    env = cli_env(ctx.settings)
    if ctx.settings.database_url:
        env["AUDIENCESYNC_DATABASE_URL"] = ctx.settings.database_url
    ran = run_cli("exports", "run", "gb", home=ctx.home, env=env)
    assert ran.code == 11, ran.output  # needs_approval: its own code, not a failure's 9
    assert "needs_approval" in ran.stdout
    assert "audiencesync runs approve" in ran.stdout
    assert len(emulator.members(audience, EMAIL)) == 25
    (held,) = [r for r in runs.list_runs(ctx, admin) if r.status == "needs_approval"]
    approved = run_cli("runs", "approve", str(held.id), home=ctx.home, env=env)
    assert approved.code == 0, approved.output
    assert f"Run {held.id} approved" in approved.stdout
    assert emulator.members(audience, EMAIL) == set()
    dismissed = run_cli("runs", "dismiss", str(held.id), home=ctx.home, env=env)
    assert dismissed.code != 0
    assert "not waiting for approval" in dismissed.output
    assert "Traceback" not in dismissed.output
