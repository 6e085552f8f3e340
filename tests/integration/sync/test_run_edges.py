"""Edges of runs: audience changes, lost leases, killed clears, rotated tokens, conflicts."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from audiencesync.control.context import Context
from audiencesync.control.models import Role
from audiencesync.control.permissions import Actor
from audiencesync.control.sync_models import Connection, Run
from audiencesync.emulator.testing import EmulatorHandle
from audiencesync.errors import ConflictError
from audiencesync.identifiers import hash_batch
from audiencesync.profiles import store
from audiencesync.profiles.synthetic import write_profiles
from audiencesync.segments import service as segments
from audiencesync.segments.rules import parse_rules
from audiencesync.sync import connections, exports, runs
from audiencesync.sync.destinations import open_destination
from audiencesync.sync.exports import HIDDEN_CONNECTION, ExportSpec
from audiencesync.sync.snapshot import Snapshot
from audiencesync.types import IdentifierType
from tests.snap_helpers import connect, load_profiles

EMAIL = "EMAIL_SHA256"


@pytest.fixture
def admin(actors: dict[Role, Actor]) -> Actor:
    return actors[Role.ADMIN]


@pytest.fixture
def audience(ctx: Context, admin: Actor, emulator: EmulatorHandle, tmp_path: Path) -> str:
    connect(ctx, admin, "Snap", share=True)
    load_profiles(ctx, admin, tmp_path)
    audience_id = str(emulator.create_segment_directly("Customers")["id"])
    exports.add_export(ctx, admin, spec(audience_id))
    return audience_id


def spec(audience_id: str, connection: str = "Snap") -> ExportSpec:
    return ExportSpec(
        name="main", connection=connection, segments=("everyone",), email_field="email",
        audience_id=audience_id,
    )  # fmt: skip


def test_moving_an_export_to_another_audience_fills_that_audience(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, audience: str
) -> None:
    runs.run_now(ctx, admin, "main")
    other = str(emulator.create_segment_directly("Other")["id"])
    exports.update_export(ctx, admin, "main", spec(other))
    view = runs.run_now(ctx, admin, "main")
    assert view.counts["added"] == {"email": 3}
    assert len(emulator.members(other, EMAIL)) == 3
    assert len(emulator.members(audience, EMAIL)) == 3  # the old audience is left alone


def test_two_exports_cannot_share_an_audience(ctx: Context, admin: Actor, audience: str) -> None:
    with pytest.raises(ConflictError, match="already the audience of export 'main'"):
        exports.add_export(ctx, admin, ExportSpec(**{**spec(audience).__dict__, "name": "twin"}))


def test_a_clear_killed_half_way_is_finished_by_the_next_run(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, audience: str, tmp_path: Path
) -> None:
    runs.run_now(ctx, admin, "main")
    # As if killed after the marker was written, around the all_users call.
    Snapshot.of(ctx, 1, audience).mark_clear_pending()
    emulator.clear_requests()
    view = runs.run_now(ctx, admin, "main")
    assert view.status == "succeeded", view.errors
    assert emulator.request_counts()["remove_all_users"] == {"200": 1}
    assert view.counts["added"] == {"email": 3}  # everyone sent again after the clear
    assert len(emulator.members(audience, EMAIL)) == 3
    assert not Snapshot.of(ctx, 1, audience).clear_pending()


def test_a_run_that_loses_its_lease_stops_and_keeps_its_successors_record(
    ctx: Context, admin: Actor, audience: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx.settings = ctx.settings.model_copy(update={"batch_size": 1, "run_lease_seconds": 0.15})

    def taken_over(context: Context, export_id: int, run_id: int, now: object) -> bool:
        with context.db.session() as session:
            session.execute(update(Run).where(Run.id == run_id).values(status="interrupted"))
        return False

    monkeypatch.setattr(runs, "_renew", taken_over)
    monkeypatch.setattr(runs, "PROGRESS_EVERY_SECONDS", 0.0)
    view = runs.run_now(ctx, admin, "main")
    assert view.status == "interrupted"  # not overwritten by the run that lost its lease


def test_a_run_refused_after_it_was_queued_ends_failed_not_running(
    ctx: Context, admin: Actor, audience: str
) -> None:
    run_id = runs.request_run(ctx, admin, "main")
    with ctx.db.session() as session:
        session.execute(update(Connection).values(status="needs_reauth"))
    view = runs.run_pending(ctx, "worker")
    assert view is not None
    assert view.id == run_id
    assert view.status == "failed"
    assert "needs re-authentication" in view.errors[0]
    assert runs.claim(ctx, "worker") is None


def test_an_export_with_a_run_in_progress_cannot_be_removed_or_changed(
    ctx: Context, admin: Actor, audience: str
) -> None:
    run_id = runs.request_run(ctx, admin, "main")
    with pytest.raises(ConflictError, match=f"has run {run_id} queued"):
        exports.remove_export(ctx, admin, "main")
    with pytest.raises(ConflictError, match=f"has run {run_id} queued"):
        exports.update_export(ctx, admin, "main", spec(audience))


def test_a_refresh_token_rotated_elsewhere_does_not_mark_the_connection(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, audience: str
) -> None:
    with ctx.db.session() as session:
        row = session.query(Connection).one()
    first, second = open_destination(ctx, row), open_destination(ctx, row)
    emulator.expire_tokens()
    first.describe_audience(audience)  # refreshes and rotates the refresh token
    emulator.expire_tokens()
    second.describe_audience(audience)  # its refresh token is stale: it reloads and retries
    first.close()
    second.close()
    assert "400" in emulator.request_counts()["oauth_token"]  # the stale refresh was refused
    assert connections.get_connection(ctx, admin, "Snap").status == "active"


def test_contributors_do_not_learn_admin_only_connection_names(
    ctx: Context, actors: dict[Role, Actor], emulator: EmulatorHandle, audience: str
) -> None:
    admin = actors[Role.ADMIN]
    connect(ctx, admin, "Private")
    other = str(emulator.create_segment_directly("Other")["id"])
    exports.add_export(ctx, admin, ExportSpec(**{**spec(other, "Private").__dict__, "name": "x"}))
    seen = {v.name: v.connection for v in exports.list_exports(ctx, actors[Role.CONTRIBUTOR])}
    assert seen == {"main": "Snap", "x": HIDDEN_CONNECTION}
    hidden = exports.get_export(ctx, actors[Role.CONTRIBUTOR], "x")
    assert hidden.ad_account_id == ""
    assert hidden.connection_status is None
    assert {v.name: v.connection for v in exports.list_exports(ctx, admin)}["x"] == "Private"


def test_the_audit_log_shows_connections_as_name_and_type_only_to_non_admins(
    ctx: Context, actors: dict[Role, Actor], audience: str
) -> None:
    from audiencesync.control import audit

    admin = actors[Role.ADMIN]
    connect(ctx, admin, "Private")
    targets = {e.target for e in audit.list_entries(ctx, actors[Role.CONTRIBUTOR], limit=200)}
    assert "connection:Snap" in targets
    assert "connection:Private" not in targets
    for entry in audit.list_entries(ctx, actors[Role.VIEWER], limit=200):
        if entry.target.startswith("connection:"):
            assert entry.before is None
            assert entry.after is None
    admin_view = audit.list_entries(ctx, admin, target="connection:Private")
    assert admin_view[0].after is not None


def _load_synthetic(ctx: Context, admin: Actor, path: Path, churn_from: int = 0) -> set[str]:
    """200 synthetic profiles as the 'customers' dataset; returns the expected email hashes."""
    source = write_profiles(path, 200, churn_from=churn_from)
    if churn_from:
        store.refresh(ctx, admin, "customers")
    else:
        store.import_file(ctx, admin, source, key="customer_id", name="customers")
        segments.create_segment(
            ctx, admin, "all", dataset="customers",
            rules=parse_rules({"field": "customer_id", "op": "is not null"}),
        )  # fmt: skip
    emails = store.sample(ctx, admin, "customers", limit=10**9).column("email")
    hashed = hash_batch(IdentifierType.EMAIL, emails.combine_chunks().cast("string"))
    return set(hashed.hashes.drop_null().to_pylist())


def test_a_full_run_after_a_small_diff_resends_everything_and_removes_exactly(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    connect(ctx, admin, "Snap")
    _load_synthetic(ctx, admin, tmp_path / "customers.parquet")
    audience = str(emulator.create_segment_directly("Everyone")["id"])
    exports.add_export(
        ctx, admin,
        ExportSpec(name="main", connection="Snap", segments=("all",), email_field="email",
                   audience_id=audience),
    )  # fmt: skip
    runs.run_now(ctx, admin, "main")
    before = _load_synthetic(ctx, admin, tmp_path / "customers.parquet", churn_from=2)
    runs.run_now(ctx, admin, "main")  # a 1% diff: its journal stays unfolded
    snapshot = Snapshot.of(ctx, 1, audience)
    journal = snapshot.storage.listing(snapshot.journal)
    assert [e for e in journal if e.name.endswith(".parquet")], "the diff's journal was folded"
    expected = _load_synthetic(ctx, admin, tmp_path / "customers.parquet", churn_from=6)
    assert before - expected, "the data change drops some emails"
    view = runs.run_now(ctx, admin, "main", full=True)
    assert view.status == "succeeded", view.errors
    # Only what was not held before is added; what was held goes again as re-sends.
    assert view.counts["added"] == {"email": len(expected - before)}
    assert view.counts["resent"] == len(expected & before)
    assert view.counts["removed"] == {"email": len(before - expected)}
    assert emulator.members(audience, EMAIL) == expected
    assert snapshot.counts() == {"email": len(expected)}


def test_a_run_sweeps_what_a_killed_run_left_behind(
    ctx: Context, admin: Actor, audience: str
) -> None:
    snapshot = Snapshot.of(ctx, 1, audience)
    assert snapshot.work is not None
    killed = snapshot.work / "runs" / "999"
    killed.mkdir(parents=True)
    (killed / "current-email.parquet").write_text("normalized identifiers")
    half_written = f"{snapshot.journal}/.00000001-add-email-x.parquet.abc.tmp"
    snapshot.storage.write_bytes(half_written, b"half a batch")
    view = runs.run_now(ctx, admin, "main")
    assert view.status == "succeeded"
    assert not killed.exists()
    assert not snapshot.storage.exists(half_written)
    assert list((snapshot.work / "runs").iterdir()) == []  # its own folder is gone too
