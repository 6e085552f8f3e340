"""Runs against the emulator over real HTTP: diffs, modes, rejects, faults, leases."""

from __future__ import annotations

from pathlib import Path

import pytest

from audiencesync.control.context import Context
from audiencesync.control.models import Role
from audiencesync.control.permissions import Actor
from audiencesync.emulator.testing import EmulatorHandle
from audiencesync.errors import ConflictError, PermissionDeniedError
from audiencesync.identifiers import hash_value
from audiencesync.profiles import store
from audiencesync.sync import connections, destinations, exports, runs
from audiencesync.sync.exports import ExportSpec
from audiencesync.sync.snapshot import Snapshot
from audiencesync.types import IdentifierType
from tests.snap_helpers import connect, load_profiles

EMAIL = "EMAIL_SHA256"
PHONE = "PHONE_SHA256"


def h(kind: IdentifierType, value: str) -> str:
    hashed = hash_value(kind, value)
    assert hashed is not None
    return hashed


@pytest.fixture
def admin(actors: dict[Role, Actor]) -> Actor:
    return actors[Role.ADMIN]


@pytest.fixture
def audience(ctx: Context, admin: Actor, emulator: EmulatorHandle, tmp_path: Path) -> str:
    connect(ctx, admin, "Snap", share=True)
    load_profiles(ctx, admin, tmp_path)
    audience_id = str(emulator.create_segment_directly("Customers")["id"])
    exports.add_export(
        ctx, admin,
        ExportSpec(name="main", connection="Snap", segments=("everyone", "gb"),
                   email_field="email", phone_field="phone", audience_id=audience_id,
                   max_removal_share=1.0),  # these tests are about diffs, not the guard
    )  # fmt: skip
    return audience_id


def reimport(ctx: Context, admin: Actor, tmp_path: Path, text: str) -> None:
    source = tmp_path / "customers.csv"
    source.write_text(text)
    store.refresh(ctx, admin, "customers")


def test_first_run_adds_everyone_once_and_rejects_are_never_sent(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, audience: str
) -> None:
    view = runs.run_now(ctx, admin, "main")
    assert view.status == "succeeded", view.errors
    # Four profiles, two of them also in segment gb: each sent once.
    assert view.counts["members"] == 4
    assert emulator.members(audience, EMAIL) == {
        h(IdentifierType.EMAIL, "ann@example.com"),
        h(IdentifierType.EMAIL, "bob@example.org"),
        h(IdentifierType.EMAIL, "dora@example.net"),
    }
    assert emulator.members(audience, PHONE) == {
        h(IdentifierType.PHONE, "+14155550101"),
        h(IdentifierType.PHONE, "+447700900123"),
        h(IdentifierType.PHONE, "+33612345678"),
    }
    assert view.counts["rejected"]["email"] == {"not_an_email": 1}
    # Bob's empty phone is "empty", never a reject.
    assert "phone" not in view.counts["rejected"]
    assert view.counts["empty"] == {"email": 0, "phone": 1}
    assert view.reject_samples["not_an_email"] == [["3", "email"]]
    assert "not-an-email" not in str(view)  # the raw value is never recorded
    assert view.counts["added"] == {"email": 3, "phone": 3}
    assert view.audience["upload_status"] in ("PROCESSING", "COMPLETE")
    assert view.audience["approximate_number_users"] is not None


def test_second_run_sends_only_the_difference_in_mirror_mode(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, audience: str, tmp_path: Path
) -> None:
    runs.run_now(ctx, admin, "main")
    reimport(ctx, admin, tmp_path,
             "customer_id,email,phone,country,age\n"
             "1,ann@example.com,+1 (415) 555-0101,US,34\n"
             "4,dora@example.net,+33 6 12 34 56 78,FR,62\n"
             "5,eve@example.com,,US,40\n")  # fmt: skip
    emulator.clear_requests()
    view = runs.run_now(ctx, admin, "main")
    assert view.status == "succeeded", view.errors
    assert view.counts["planned_adds"] == {"email": 1}
    assert view.counts["planned_removes"] == {"email": 1, "phone": 1}
    assert view.counts["added"] == {"email": 1}
    assert view.counts["removed"] == {"email": 1, "phone": 1}
    assert emulator.members(audience, EMAIL) == {
        h(IdentifierType.EMAIL, "ann@example.com"),
        h(IdentifierType.EMAIL, "dora@example.net"),
        h(IdentifierType.EMAIL, "eve@example.com"),
    }
    unchanged = runs.run_now(ctx, admin, "main")
    assert unchanged.counts["planned_adds"] == {}
    assert unchanged.counts["planned_removes"] == {}


def test_add_only_never_removes(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, audience: str, tmp_path: Path
) -> None:
    exports.update_export(
        ctx, admin, "main",
        ExportSpec(name="main", connection="Snap", segments=("everyone",),
                   email_field="email", audience_id=audience, mode="add-only"),
    )  # fmt: skip
    runs.run_now(ctx, admin, "main")
    reimport(ctx, admin, tmp_path, "customer_id,email,phone,country,age\n9,zed@example.com,,US,1\n")
    view = runs.run_now(ctx, admin, "main")
    assert view.counts["planned_removes"] == {}
    assert len(emulator.members(audience, EMAIL)) == 4


def test_dry_run_plans_and_sends_nothing(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, audience: str
) -> None:
    emulator.clear_requests()
    view = runs.run_now(ctx, admin, "main", dry_run=True)
    assert view.status == "succeeded"
    assert view.counts["planned_adds"] == {"email": 3, "phone": 3}
    assert view.counts["added"] == {}
    assert emulator.members(audience, EMAIL) == set()
    real = runs.run_now(ctx, admin, "main")
    assert real.counts["added"] == {"email": 3, "phone": 3}


def test_full_resends_everything(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, audience: str
) -> None:
    runs.run_now(ctx, admin, "main")
    view = runs.run_now(ctx, admin, "main", full=True)
    # Every identifier was confirmed before: all six are re-sent, none is a new add.
    assert view.counts["added"] == {}
    assert view.counts["planned_adds"] == {}
    assert view.counts["planned_resends"] == {"email": 3, "phone": 3}
    assert view.counts["resent"] == 6


def test_injected_faults_and_token_expiry_still_end_exactly_right(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, audience: str
) -> None:
    emulator.set_faults(fail_429=0.3, fail_500=0.2, fail_503=0.2, seed=3)
    emulator.expire_tokens()
    view = runs.run_now(ctx, admin, "main")
    emulator.clear_faults()
    assert view.status == "succeeded", view.errors
    assert len(emulator.members(audience, EMAIL)) == 3
    assert len(emulator.members(audience, PHONE)) == 3


def test_a_revoked_grant_fails_the_run_and_marks_the_connection(
    ctx: Context,
    admin: Actor,
    emulator: EmulatorHandle,
    audience: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(destinations, "pause", slept.append)
    emulator.revoke_tokens()
    emulator.expire_tokens()
    view = runs.run_now(ctx, admin, "main")
    # The stored tokens were looked at again over a bounded wait before the mark.
    assert slept == list(destinations.REFUSED_REFRESH_WAITS)
    assert view.status == "failed"
    assert any("re-authenticate" in e or "reauth" in e for e in view.errors), view.errors
    assert connections.get_connection(ctx, admin, "Snap").status == "needs_reauth"
    assert exports.get_export(ctx, admin, "main").state == "connection needs re-authentication"
    with pytest.raises(ConflictError, match="needs re-authentication"):
        runs.run_now(ctx, admin, "main")


def test_viewers_cannot_run_and_runs_are_one_at_a_time(
    ctx: Context, actors: dict[Role, Actor], audience: str
) -> None:
    with pytest.raises(PermissionDeniedError):
        runs.run_now(ctx, actors[Role.VIEWER], "main")
    first = runs.request_run(ctx, actors[Role.ADMIN], "main")
    with pytest.raises(ConflictError, match=f"already has run {first} queued"):
        runs.request_run(ctx, actors[Role.CONTRIBUTOR], "main")
    assert runs.claim(ctx, "worker-a") == first
    assert runs.claim(ctx, "worker-b") is None


def test_clear_empties_the_audience_and_resets_the_snapshot(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, audience: str
) -> None:
    runs.run_now(ctx, admin, "main")
    runs.clear_audience(ctx, admin, "main", confirm=True)
    assert emulator.members(audience, EMAIL) == set()
    view = runs.run_now(ctx, admin, "main")
    assert view.counts["added"] == {"email": 3, "phone": 3}


def test_a_clear_that_breaks_unexpectedly_is_recorded_as_failed(
    ctx: Context,
    admin: Actor,
    emulator: EmulatorHandle,
    audience: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs.run_now(ctx, admin, "main")

    def disk_error(self: Snapshot) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Snapshot, "reset", disk_error)
    with pytest.raises(OSError, match="disk full"):
        runs.clear_audience(ctx, admin, "main", confirm=True)
    (last, *_) = runs.list_runs(ctx, admin, limit=1)
    assert last.status == "failed"
    assert list(last.errors) == ["unexpected error: OSError"]
    monkeypatch.undo()
    # The marker makes the next run finish the clear, then send everyone again.
    view = runs.run_now(ctx, admin, "main")
    assert view.status == "succeeded"
    assert view.counts["added"] == {"email": 3, "phone": 3}


def test_a_queued_run_can_be_cancelled_and_a_finished_one_cannot(
    ctx: Context, admin: Actor, audience: str
) -> None:
    queued = runs.request_run(ctx, admin, "main")
    cancelled = runs.cancel_run(ctx, admin, queued)
    assert cancelled.status == "cancelled"
    assert runs.claim(ctx, "w") is None  # nothing left to run
    done = runs.run_now(ctx, admin, "main")
    with pytest.raises(ConflictError, match="has already ended"):
        runs.cancel_run(ctx, admin, done.id)
