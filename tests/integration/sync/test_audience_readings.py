"""Readings of the audience over time, match rate, drift and its repair (--replace).

The emulator matches uploads after ``processing_seconds`` of its own clock, which these
tests move by hand; the scheduler's clock is the ``now`` given to ``tick``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from audiencesync.cli import exports as cli_exports
from audiencesync.control.context import Context
from audiencesync.control.models import Role, utcnow
from audiencesync.control.permissions import Actor
from audiencesync.control.sync_models import Export
from audiencesync.emulator.testing import EmulatorHandle, running_emulator
from audiencesync.errors import ConflictError, PermissionDeniedError, UserInputError
from audiencesync.identifiers import hash_batch
from audiencesync.profiles import store
from audiencesync.profiles.synthetic import write_profiles
from audiencesync.segments import service as segments
from audiencesync.segments.rules import parse_rules
from audiencesync.sync import audience, exports, runs, scheduler
from audiencesync.sync.exports import ExportSpec
from audiencesync.sync.snapshot import Snapshot
from audiencesync.types import IdentifierType
from tests.integration.emulator.helpers import FakeClock, bearer_client, hashes, users_body
from tests.snap_helpers import connect

PROFILES = 600
EMAIL, PHONE = "EMAIL_SHA256", "PHONE_SHA256"
MATCH_RATE = 0.7


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock: FakeClock) -> Iterator[EmulatorHandle]:
    """Overrides the package fixture: matching takes 30 minutes of the emulator's clock."""
    with running_emulator(
        clock=clock, processing_seconds=1800, match_rate=MATCH_RATE, rate_limit=0
    ) as handle:
        yield handle


@pytest.fixture
def admin(actors: dict[Role, Actor]) -> Actor:
    return actors[Role.ADMIN]


@pytest.fixture
def audience_id(ctx: Context, admin: Actor, emulator: EmulatorHandle, tmp_path: Path) -> str:
    connect(ctx, admin, "Snap", share=True)
    write_profiles(tmp_path / "customers.parquet", PROFILES)
    store.import_file(ctx, admin, tmp_path / "customers.parquet", key="customer_id",
                      name="customers")  # fmt: skip
    segments.create_segment(
        ctx, admin, "all", dataset="customers",
        rules=parse_rules({"field": "customer_id", "op": "is not null"}),
    )  # fmt: skip
    found = str(emulator.create_segment_directly("Everyone")["id"])
    exports.add_export(
        ctx, admin,
        ExportSpec(name="main", connection="Snap", segments=("all",), email_field="email",
                   phone_field="phone", default_country="GB", audience_id=found),
    )  # fmt: skip
    return found


def expected(ctx: Context, admin: Actor) -> dict[str, set[str]]:
    """The segment's hashed identifiers per schema, computed apart from the engine."""
    table = store.sample(ctx, admin, "customers", limit=10**9)
    result = {}
    for kind, field, schema in ((IdentifierType.EMAIL, "email", EMAIL),
                                (IdentifierType.PHONE, "phone", PHONE)):  # fmt: skip
        column = table.column(field).combine_chunks().cast("string")
        hashed = hash_batch(kind, column, default_country="GB")
        result[schema] = set(hashed.hashes.drop_null().to_pylist())
    return result


def at_snapchat(emulator: EmulatorHandle, audience_id: str) -> dict[str, set[str]]:
    return {schema: emulator.members(audience_id, schema) for schema in (EMAIL, PHONE)}


def snap_api(emulator: EmulatorHandle) -> httpx.Client:
    """Another Snapchat client (someone else's), acting behind audiencesync's back."""
    return bearer_client(emulator, emulator.obtain_tokens()["access_token"])


def test_follow_up_readings_back_off_until_matched_and_show_held_and_rate(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, audience_id: str, clock: FakeClock
) -> None:
    run = runs.run_now(ctx, admin, "main")
    assert run.status == "succeeded", run.errors
    assert run.audience["upload_status"] == "PROCESSING"
    members = sum(emulator.member_counts(audience_id).values())
    view = exports.get_export(ctx, admin, "main").audience
    assert view is not None
    assert view.latest is not None
    # Held is what Snapchat holds (counted from the snapshot), not a sum of runs' adds.
    assert view.identifiers_held == members > PROFILES // 2
    assert view.pending
    assert view.match_rate is None
    assert run.finished_at is not None
    assert view.next_reading_at == run.finished_at + timedelta(minutes=1)

    # Nothing is read before it is due; then 1, 5, 15, 60 minutes apart while matching.
    assert scheduler.tick(ctx, run.finished_at + timedelta(seconds=59)).read == []
    moment = run.finished_at
    for delay in (1, 5, 15):
        moment += timedelta(minutes=delay)
        clock.advance(delay * 60)
        assert scheduler.tick(ctx, moment).read == ["main"]
        state = exports.get_export(ctx, admin, "main").audience
        assert state is not None
        assert state.latest is not None
        assert state.latest.upload_status == "PROCESSING"
        assert state.latest.trigger == "follow_up"
    assert state.next_reading_at == moment + timedelta(minutes=60)
    clock.advance(3600)  # the emulator has matched by now
    moment += timedelta(minutes=60)
    assert scheduler.tick(ctx, moment).read == ["main"]
    done = exports.get_export(ctx, admin, "main").audience
    assert done is not None
    assert done.latest is not None
    assert done.upload_status == "COMPLETE"
    assert done.approximate_number_users == round(members * MATCH_RATE) > 0
    assert done.match_rate == pytest.approx(round(members * MATCH_RATE) / members)
    assert done.next_reading_at == moment + audience.DAILY  # then daily
    assert done.drift is None
    readings = runs.export_readings(ctx, admin, "main")
    assert [r.trigger for r in readings] == ["run", "follow_up", "follow_up", "follow_up",
                                             "follow_up"]  # fmt: skip
    assert all(r.run_id == run.id for r in readings)
    assert scheduler.tick(ctx, moment + timedelta(hours=23)).read == []
    assert scheduler.tick(ctx, moment + timedelta(days=1)).read == ["main"]


def test_an_audience_emptied_behind_audiencesyncs_back_is_flagged_and_replace_repairs_it(
    ctx: Context,
    admin: Actor,
    emulator: EmulatorHandle,
    audience_id: str,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    announced: list[tuple[str, audience.Drift]] = []
    monkeypatch.setattr(
        audience, "drift_detected", lambda _ctx, name, d: announced.append((name, d))
    )
    emulator.set_settings(processing_seconds=0)
    first = runs.run_now(ctx, admin, "main")
    assert first.audience["upload_status"] == "COMPLETE"
    held = sum(emulator.member_counts(audience_id).values())
    with snap_api(emulator) as api:
        assert api.delete(f"/v1/segments/{audience_id}/all_users").status_code == 200
    reading = runs.read_audience(ctx, admin, "main")
    assert reading.approximate_number_users == 0
    assert reading.drifted
    drift = exports.get_export(ctx, admin, "main").audience.drift  # type: ignore[union-attr]
    assert drift is not None
    assert drift["rule"] == audience.EMPTIED
    assert drift["identifiers_held"] == held
    assert drift["approximate_number_users"] == 0
    assert drift["usual_match_rate"] == pytest.approx(round(held * MATCH_RATE) / held)
    assert "--replace" not in drift["reason"]
    assert "replace run" in drift["reason"]
    # A plain run trusts its snapshot and sends nothing: the drift stays, said once.
    plain = runs.run_now(ctx, admin, "main")
    assert plain.counts["planned_adds"] == {}
    assert exports.get_export(ctx, admin, "main").audience.drift is not None  # type: ignore[union-attr]
    assert [name for name, _ in announced] == ["main"]

    with pytest.raises(UserInputError):
        runs.run_now(ctx, admin, "main", replace=True, dry_run=True)
    repaired = runs.run_now(ctx, admin, "main", replace=True, confirm=True)
    assert repaired.status == "succeeded", repaired.errors
    assert repaired.replace
    assert repaired.counts.get("emptied") is True
    assert at_snapchat(emulator, audience_id) == expected(ctx, admin)
    after = exports.get_export(ctx, admin, "main").audience
    assert after is not None
    assert after.drift is None
    assert after.identifiers_held == held
    assert after.match_rate == pytest.approx(round(held * MATCH_RATE) / held)


def test_an_inflated_audience_is_flagged_and_replace_removes_what_was_not_sent(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, audience_id: str
) -> None:
    emulator.set_settings(processing_seconds=0)
    runs.run_now(ctx, admin, "main")
    held = sum(emulator.member_counts(audience_id).values())
    with snap_api(emulator) as api:
        extra = api.post(f"/v1/segments/{audience_id}/users", json=users_body(hashes(3000, "x")))
        assert extra.status_code == 200, extra.text
    reading = runs.read_audience(ctx, admin, "main")
    assert reading.approximate_number_users == round((held + 3000) * MATCH_RATE)
    assert reading.approximate_number_users > held
    drift = exports.get_export(ctx, admin, "main").audience.drift  # type: ignore[union-attr]
    assert drift is not None
    assert drift["rule"] == audience.MORE_USERS_THAN_IDENTIFIERS
    runs.run_now(ctx, admin, "main", replace=True, confirm=True)
    assert at_snapchat(emulator, audience_id) == expected(ctx, admin)
    assert exports.get_export(ctx, admin, "main").audience.drift is None  # type: ignore[union-attr]


def test_an_agreeing_audience_is_not_flagged_and_viewers_cannot_read_it(
    ctx: Context, actors: dict[Role, Actor], emulator: EmulatorHandle, audience_id: str
) -> None:
    admin = actors[Role.ADMIN]
    emulator.set_settings(processing_seconds=0)
    for _ in range(3):
        runs.run_now(ctx, admin, "main", full=True)
        assert not runs.read_audience(ctx, admin, "main").drifted
    assert exports.get_export(ctx, admin, "main").audience.drift is None  # type: ignore[union-attr]
    with pytest.raises(PermissionDeniedError):
        runs.read_audience(ctx, actors[Role.VIEWER], "main")


@pytest.mark.parametrize(
    ("held", "matched", "usual", "rule"),
    [
        (1000, 700, 0.7, None),
        (1000, 1030, None, None),  # within the 2% + 10 of rounding
        (1000, 1031, None, audience.MORE_USERS_THAN_IDENTIFIERS),
        (0, 11, None, audience.MORE_USERS_THAN_IDENTIFIERS),
        (1000, 340, 0.7, audience.BELOW_HISTORY),
        (1000, 360, 0.7, None),
        (1000, 610, 0.3, audience.ABOVE_HISTORY),
        (99, 0, 0.7, None),  # too few identifiers for the history rule
        (1000, 0, None, audience.EMPTIED),  # no history needed: emptied on its own
        (1000, 9, None, audience.EMPTIED),  # under 1%
        (1000, 10, None, None),  # 1%: left to the history rule
        (1000, 0, 0.7, audience.EMPTIED),
    ],
)
def test_the_drift_rule(held: int, matched: int, usual: float | None, rule: str | None) -> None:
    from datetime import UTC, datetime

    found = audience.detect_drift(
        held=held, matched=matched, usual_rate=usual, reading_id=1, read_at=datetime.now(UTC)
    )
    assert (found.rule if found else None) == rule


# --- regressions: what is held after failures, first readings, moves, races ----------


def _members(emulator: EmulatorHandle, audience_id: str) -> int:
    return sum(emulator.member_counts(audience_id).values())


def _export_id(ctx: Context) -> int:
    with ctx.db.session() as session:
        found = session.scalar(select(Export.id).where(Export.name == "main"))
    assert found is not None
    return found


def _matched_run(ctx: Context, admin: Actor, emulator: EmulatorHandle) -> runs.RunView:
    emulator.set_settings(processing_seconds=0)
    run = runs.run_now(ctx, admin, "main")
    assert run.status == "succeeded", run.errors
    return run


def test_a_replace_whose_clear_answer_was_lost_shows_held_unknown_and_reads_again_soon(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, audience_id: str
) -> None:
    _matched_run(ctx, admin, emulator)
    emulator.set_faults(drop_after=1.0, only_kinds=["remove_all_users"])
    failed = runs.run_now(ctx, admin, "main", replace=True, confirm=True)
    emulator.clear_faults()
    assert failed.status == "failed"
    assert _members(emulator, audience_id) == 0  # Snapchat did empty it
    shown = exports.get_export(ctx, admin, "main").audience
    assert shown is not None
    assert shown.identifiers_held is None  # not the 998 held before
    assert shown.held_unknown is not None
    assert f"run {failed.id}" in shown.held_unknown
    assert shown.match_rate is None
    assert failed.finished_at is not None
    assert shown.next_reading_at == failed.finished_at + timedelta(minutes=1)
    lines = cli_exports.audience_lines("main", shown)
    assert lines[0].startswith("identifiers held: unknown (")
    assert not any("70" in line for line in lines), lines
    # The follow-up a minute later: the clear is still pending, so held stays unknown.
    moment = failed.finished_at + timedelta(minutes=1)
    assert scheduler.tick(ctx, moment).read == ["main"]
    reading = runs.export_readings(ctx, admin, "main")[-1]
    assert reading.identifiers_held is None
    assert reading.approximate_number_users == 0
    assert reading.match_rate is None
    assert not reading.drifted
    after = exports.get_export(ctx, admin, "main").audience
    assert after is not None
    assert after.identifiers_held is None
    assert after.next_reading_at == moment + timedelta(minutes=5)  # still soon, not a day
    # The next run finishes the emptying and uploads; held is true again.
    settled = runs.run_now(ctx, admin, "main")
    assert settled.status == "succeeded", settled.errors
    final = exports.get_export(ctx, admin, "main").audience
    assert final is not None
    assert final.identifiers_held == _members(emulator, audience_id) > 0


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (no finally writes a status)."""


def test_a_killed_replace_leaves_held_unknown_with_a_follow_up_reading_soon(
    ctx: Context,
    admin: Actor,
    emulator: EmulatorHandle,
    audience_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _matched_run(ctx, admin, emulator)
    before = exports.get_export(ctx, admin, "main").audience
    assert before is not None
    assert before.identifiers_held == _members(emulator, audience_id)

    def killed(_self: Snapshot) -> None:
        raise _Killed()

    monkeypatch.setattr(Snapshot, "reset", killed)
    with pytest.raises(_Killed):
        runs.run_now(ctx, admin, "main", replace=True, confirm=True)
    monkeypatch.undo()
    later = utcnow() + timedelta(hours=1)
    assert runs.mark_interrupted(ctx, now=lambda: later) == 1
    assert _members(emulator, audience_id) == 0
    shown = exports.get_export(ctx, admin, "main").audience
    assert shown is not None
    assert shown.identifiers_held is None
    assert shown.held_unknown is not None
    assert "interrupted" in shown.held_unknown
    assert shown.next_reading_at == later + timedelta(minutes=1)
    # The last reading was taken before the emptying: its size and rate are not shown.
    assert shown.pending
    assert shown.approximate_number_users is None
    lines = cli_exports.audience_lines("main", shown)
    assert not any("matched users" in line or "match rate" in line for line in lines), lines
    reading = runs.read_audience(ctx, admin, "main")
    assert reading.identifiers_held is None  # the clear is pending: no figure is true
    assert reading.match_rate is None


def test_an_audience_emptied_before_its_first_completed_reading_is_flagged(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, audience_id: str, clock: FakeClock
) -> None:
    run = runs.run_now(ctx, admin, "main")
    assert run.audience["upload_status"] == "PROCESSING"
    held = _members(emulator, audience_id)
    with snap_api(emulator) as api:
        assert api.delete(f"/v1/segments/{audience_id}/all_users").status_code == 200
    clock.advance(7200)
    assert run.finished_at is not None
    assert scheduler.tick(ctx, run.finished_at + timedelta(minutes=1)).read == ["main"]
    shown = exports.get_export(ctx, admin, "main").audience
    assert shown is not None
    assert shown.drift is not None
    assert shown.drift["rule"] == audience.EMPTIED
    assert shown.drift["identifiers_held"] == held
    assert shown.drift["approximate_number_users"] == 0


def test_a_clear_records_its_own_reading_so_no_old_rate_sits_beside_held_0(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, audience_id: str
) -> None:
    _matched_run(ctx, admin, emulator)
    assert runs.clear_audience(ctx, admin, "main", confirm=True).status == "succeeded"
    shown = exports.get_export(ctx, admin, "main").audience
    assert shown is not None
    assert shown.identifiers_held == 0 == _members(emulator, audience_id)
    assert shown.latest is not None
    assert shown.latest.identifiers_held == 0
    assert shown.match_rate is None
    assert shown.drift is None
    lines = cli_exports.audience_lines("main", shown)
    assert "match rate: —" in lines, lines


def test_an_on_demand_read_during_a_run_is_refused_in_one_sentence(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, audience_id: str
) -> None:
    _matched_run(ctx, admin, emulator)
    readings = len(runs.export_readings(ctx, admin, "main"))
    runs.request_run(ctx, admin, "main")
    with pytest.raises(ConflictError, match="a run is under way; the audience is read when"):
        runs.read_audience(ctx, admin, "main")
    assert len(runs.export_readings(ctx, admin, "main")) == readings


def test_a_snapshot_that_cannot_be_counted_is_a_failed_reading_and_other_exports_go_on(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, audience_id: str
) -> None:
    run = _matched_run(ctx, admin, emulator)
    other = str(emulator.create_segment_directly("Other")["id"])
    exports.add_export(
        ctx, admin,
        ExportSpec(name="second", connection="Snap", segments=("all",), email_field="email",
                   default_country="GB", audience_id=other),
    )  # fmt: skip
    runs.run_now(ctx, admin, "second")
    snapshot = Snapshot.of(ctx, _export_id(ctx), audience_id)
    snapshot.storage.write_bytes(snapshot.confirmed(IdentifierType.EMAIL), b"not parquet")
    snapshot.storage.delete(f"{snapshot.root}/count-email.txt")
    assert run.finished_at is not None
    tick = scheduler.tick(ctx, run.finished_at + timedelta(days=2))
    assert sorted(tick.read) == ["main", "second"]
    failed = runs.export_readings(ctx, admin, "main")[-1]
    assert failed.error is not None
    assert "could not be counted" in failed.error
    assert "not parquet" not in failed.error
    assert failed.identifiers_held is None
    # On demand too: a stored failed reading, no traceback.
    assert runs.read_audience(ctx, admin, "main").error == failed.error


def test_moving_an_export_to_another_audience_starts_its_figures_and_history_afresh(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, audience_id: str
) -> None:
    _matched_run(ctx, admin, emulator)
    runs.read_audience(ctx, admin, "main")
    other = str(emulator.create_segment_directly("Other")["id"])
    spec = replace(exports.spec_of(exports.get_export(ctx, admin, "main")), audience_id=other)
    exports.update_export(ctx, admin, "main", spec)
    moved = exports.get_export(ctx, admin, "main").audience
    assert moved is not None
    assert moved.identifiers_held is None
    assert moved.latest is None
    assert moved.drift is None
    assert moved.next_reading_at is None
    # The other audience's population matches less: judged on its own, not against A's 70%.
    emulator.set_settings(match_rate=0.3)
    run = runs.run_now(ctx, admin, "main")
    assert run.status == "succeeded", run.errors
    shown = exports.get_export(ctx, admin, "main").audience
    assert shown is not None
    assert shown.identifiers_held == _members(emulator, other)
    assert shown.match_rate == pytest.approx(0.3, abs=0.01)
    assert shown.drift is None


def test_a_completed_reading_without_a_size_is_stored_as_unknown_with_no_verdict(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, audience_id: str
) -> None:
    _matched_run(ctx, admin, emulator)
    with ctx.db.session() as session:
        export = session.get(Export, _export_id(ctx))
        assert export is not None
        view, found = audience.record_reading(
            session, export, audience.Reading(None, "COMPLETE", "READY"),
            held=1000, trigger="on_demand", at=utcnow(),
        )  # fmt: skip
    assert found is None
    assert not view.drifted
    assert view.approximate_number_users is None
    assert view.match_rate is None
    shown = exports.get_export(ctx, admin, "main").audience
    assert shown is not None
    assert shown.drift is None
    assert any("size not reported" in line for line in cli_exports.audience_lines("main", shown))
