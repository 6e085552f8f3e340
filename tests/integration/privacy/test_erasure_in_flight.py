"""Erasure against what the snapshot does not know yet (review of issue 16, findings 1-2):
an add Snapchat applied without acknowledging it, and a run sending while the erasure
happens. An erasure never reports ``succeeded`` while the person may be in an audience."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from audiencesync.control.context import Context
from audiencesync.control.models import Role, utcnow
from audiencesync.control.permissions import Actor
from audiencesync.control.privacy_models import Erasure
from audiencesync.emulator.testing import EmulatorHandle
from audiencesync.identifiers import hash_value
from audiencesync.profiles import store
from audiencesync.segments import service as segments
from audiencesync.segments.rules import parse_rules
from audiencesync.sync import exports, privacy, runs
from audiencesync.sync.exports import ExportSpec
from audiencesync.types import IdentifierType
from tests.snap_helpers import connect

pytestmark = pytest.mark.parametrize("database_url", [None], ids=["sqlite"])
EMAIL, PHONE = "EMAIL_SHA256", "PHONE_SHA256"
JANE_EMAIL, JANE_PHONE = "jane@example.com", "+1 415 555 0999"


def h(kind: IdentifierType, value: str) -> str:
    hashed = hash_value(kind, value)
    assert hashed is not None
    return hashed


def write(path: Path, *, jane: bool) -> Path:
    rows = ["customer_id,email,phone"]
    rows += [f"{i},user{i}@example.com,+1 415 555 {i:04d}" for i in range(1, 11)]
    if jane:
        rows.append(f"99,{JANE_EMAIL},{JANE_PHONE}")
    path.write_text("\n".join(rows) + "\n")
    return path


def setup(ctx: Context, admin: Actor, emulator: EmulatorHandle, tmp_path: Path) -> str:
    """One mirror export of 10 people, run once; jane then joins the data."""
    connect(ctx, admin, "Snap")
    source = write(tmp_path / "customers.csv", jane=False)
    store.import_file(ctx, admin, source, key="customer_id", name="customers")
    segments.create_segment(
        ctx, admin, "everyone", dataset="customers",
        rules=parse_rules({"field": "customer_id", "op": "is not null"}),
    )  # fmt: skip
    audience = str(emulator.create_segment_directly("m")["id"])
    exports.add_export(
        ctx, admin,
        ExportSpec(
            name="m", connection="Snap", segments=("everyone",), email_field="email",
            phone_field="phone", audience_id=audience,
        ),
    )  # fmt: skip
    assert runs.run_now(ctx, admin, "m").status == "succeeded"
    write(source, jane=True)
    store.refresh(ctx, admin, "customers")
    return audience


def test_erasure_removes_an_add_snapchat_applied_but_never_acknowledged(
    ctx: Context, actors: dict[Role, Actor], emulator: EmulatorHandle, tmp_path: Path
) -> None:
    admin = actors[Role.ADMIN]
    audience = setup(ctx, admin, emulator, tmp_path)
    ctx.settings = ctx.settings.model_copy(update={"http_max_attempts": 1})
    emulator.set_faults(drop_after=1.0, only_kinds=["add_users"])  # applied, answer lost
    assert runs.run_now(ctx, admin, "m").status == "failed"
    emulator.clear_faults()
    assert h(IdentifierType.EMAIL, JANE_EMAIL) in emulator.members(audience, EMAIL)

    view = privacy.erase(ctx, admin, emails=[JANE_EMAIL])
    assert view.status == "succeeded"
    assert view.exports["m"]["status"] == "done"
    assert h(IdentifierType.EMAIL, JANE_EMAIL) not in emulator.members(audience, EMAIL)
    # Absent from the snapshot, so not counted as held there; the DELETE was sent anyway.
    assert "held" not in view.exports["m"]
    assert view.exports["m"]["removed"] == {"email": 1}


def test_erasure_during_a_run_is_pending_and_the_run_adds_nothing_erased(
    ctx: Context, actors: dict[Role, Actor], emulator: EmulatorHandle, tmp_path: Path
) -> None:
    admin = actors[Role.ADMIN]
    audience = setup(ctx, admin, emulator, tmp_path)
    # One request at a time, each slow: the email adds are in flight when jane is erased;
    # the phone adds, planned with her phone, are sent after.
    ctx.settings = ctx.settings.model_copy(update={"http_max_concurrency": 1})
    # The adds wait at the emulator until the erasure is recorded: the faults are cleared
    # then, which releases the waiting request (however loaded the machine).
    emulator.set_faults(latency_ms=120_000, only_kinds=["add_users"])
    box: dict[str, runs.RunView] = {}
    thread = threading.Thread(target=lambda: box.setdefault("v", runs.run_now(ctx, admin, "m")))
    thread.start()
    deadline = time.monotonic() + 60
    while not emulator.waiting().get("add_users"):  # the email adds are at Snapchat
        assert time.monotonic() < deadline, "the run never started sending"
        time.sleep(0.05)
    view = privacy.erase(ctx, admin, emails=[JANE_EMAIL], phones=[JANE_PHONE])
    emulator.clear_faults()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the run did not finish once the adds were released"
    assert view.status == "partially_succeeded"
    assert view.exports["m"]["status"] == "pending"
    assert view.id in privacy.unfinished_erasures(ctx)
    run = box["v"]
    assert run.status == "succeeded", run.errors
    # Her phone was dropped from the adds right before sending: never added.
    assert h(IdentifierType.PHONE, JANE_PHONE) not in emulator.members(audience, PHONE)
    assert run.counts["suppressed"].get("phone") == 1
    assert run.counts["added"] == {"email": 1}
    # Her email was in flight; the resumed erasure (the scheduler's hourly step) removes it.
    (resumed,) = privacy.resume_unfinished(ctx, admin)
    assert resumed.status == "succeeded", resumed.exports
    assert h(IdentifierType.EMAIL, JANE_EMAIL) not in emulator.members(audience, EMAIL)
    assert h(IdentifierType.PHONE, JANE_PHONE) not in emulator.members(audience, PHONE)


def test_an_erasure_killed_before_its_identifiers_were_recorded_is_failed_not_left_open(
    ctx: Context, actors: dict[Role, Actor]
) -> None:
    admin = actors[Role.ADMIN]
    with ctx.db.session() as session:
        row = Erasure(
            requested_by="admin", requested_at=utcnow(), status="recording",
            identifiers={"email": 1}, exports={}, lease_until=utcnow() - timedelta(seconds=1),
        )  # fmt: skip
        session.add(row)
        session.flush()
        erasure_id = row.id
    assert privacy.unfinished_erasures(ctx) == [erasure_id]
    assert privacy.resume_unfinished(ctx, admin) == []
    assert privacy.get_erasure(ctx, admin, erasure_id).status == "failed"
    assert privacy.unfinished_erasures(ctx) == []
