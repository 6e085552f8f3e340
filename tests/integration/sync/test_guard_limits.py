"""The removal guard's edges, each a way a reviewer emptied an audience or got a figure wrong:
replace, per type, rolling window, approval against current members, resent, keys."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audiencesync.control.context import Context
from audiencesync.control.permissions import Actor
from audiencesync.emulator.testing import EmulatorHandle
from audiencesync.profiles import store
from audiencesync.segments import service as segments
from audiencesync.segments.rules import parse_rules
from audiencesync.sync import exports, runs
from audiencesync.sync.exports import ExportSpec
from tests.integration.sync import test_guard
from tests.integration.sync.test_guard import EMAIL, audience_of, hashes, people, reimport
from tests.snap_helpers import connect

PHONE = "PHONE_SHA256"
admin = test_guard.admin
source = test_guard.source


def test_a_replace_of_segments_that_match_nobody_empties_nothing(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, source: Path
) -> None:
    audience = audience_of(ctx, admin)
    reimport(ctx, admin, source, people(range(2, 51, 2)))  # nobody in GB any more
    view = runs.run_now(ctx, admin, "gb", replace=True, confirm=True)
    assert view.status == "failed"
    assert "did not empty the audience" in view.errors[0]
    assert "match nobody" in view.errors[0]
    assert not view.counts.get("emptied")
    assert emulator.members(audience, EMAIL) == hashes(range(1, 51, 2))
    assert exports.get_export(ctx, admin, "gb").audience is not None


def test_a_replace_that_would_lose_more_than_the_share_holds_before_emptying(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, source: Path
) -> None:
    audience = audience_of(ctx, admin)
    # 25 GB held (odd 1..49); 10 leave and 1 arrives: a replace would lose 10 of 25.
    reimport(ctx, admin, source, people(range(21, 52)))
    view = runs.run_now(ctx, admin, "gb", replace=True, confirm=True)
    assert view.status == "needs_approval", view.errors
    assert view.message is not None
    assert "did not empty the audience" in view.message
    assert view.counts["guard"]["held_removes"] == {"email": 10}
    assert not view.counts.get("emptied")
    # Adds went out as in a mirror run; the ten stay until approved.
    assert emulator.members(audience, EMAIL) == hashes(range(1, 52, 2))
    approval = runs.approve_now(ctx, admin, view.id)
    assert approval.status == "succeeded"
    assert emulator.members(audience, EMAIL) == hashes(range(21, 52, 2))


def test_a_replace_within_the_share_empties_and_uploads(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, source: Path
) -> None:
    audience = audience_of(ctx, admin)
    reimport(ctx, admin, source, people(range(3, 51)))  # one of 25 leaves
    view = runs.run_now(ctx, admin, "gb", replace=True, confirm=True)
    assert view.status == "succeeded", view.errors
    assert view.counts["emptied"] is True
    assert view.counts["planned_adds"] == {"email": 24}
    assert emulator.members(audience, EMAIL) == hashes(range(3, 51, 2))


def test_a_whole_identifier_type_is_not_wiped_without_approval(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    connect(ctx, admin, "Snap", share=True)
    path = tmp_path / "p.csv"

    def write(bad_phone: bool) -> None:
        lines = ["customer_id,email,phone"]
        for i in range(1, 101):
            phone = ("x" if bad_phone else f"+4477009{i:05d}") if i <= 10 else ""
            lines.append(f"{i},p{i}@example.com,{phone}")
        path.write_text("\n".join(lines) + "\n")

    write(False)
    store.import_file(ctx, admin, path, key="customer_id", name="p")
    segments.create_segment(
        ctx, admin, "all", dataset="p",
        rules=parse_rules({"field": "customer_id", "op": ">", "value": 0}),
    )  # fmt: skip
    aud = str(emulator.create_segment_directly("P")["id"])
    exports.add_export(
        ctx, admin,
        ExportSpec(name="pe", connection="Snap", segments=("all",), email_field="email",
                   phone_field="phone", audience_id=aud),
    )  # fmt: skip
    assert runs.run_now(ctx, admin, "pe").status == "succeeded"
    write(True)
    store.refresh(ctx, admin, "p")
    # 10 of 110 overall (9%, under 20%), but every phone.
    view = runs.run_now(ctx, admin, "pe")
    assert view.status == "needs_approval"
    assert view.counts["guard"]["reason"] == "type_share_above_threshold"
    assert view.message is not None
    assert "10 of them are phone identifiers" in view.message
    assert emulator.member_counts(aud)[PHONE] == 10


def test_removals_add_up_over_the_rolling_window(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, source: Path
) -> None:
    audience = audience_of(ctx, admin)
    t0 = datetime.now(UTC) + timedelta(minutes=1)  # the fixture's upload is in the window
    # 25 held: 4 leave (16%), then 3 more (7 of the 25 held at most in the window: 28%).
    reimport(ctx, admin, source, people(range(9, 51)))
    first = runs.run_now(ctx, admin, "gb", now=lambda: t0)
    assert first.status == "succeeded"
    reimport(ctx, admin, source, people(range(15, 51)))
    second = runs.run_now(ctx, admin, "gb", now=lambda: t0 + timedelta(hours=2))
    assert second.status == "needs_approval"
    assert second.counts["guard"]["reason"] == "recent_removals_above_threshold"
    assert second.message is not None
    assert "28%" in second.message
    assert "that makes 7, 28% of the 25 identifiers held at most" in second.message
    assert len(emulator.members(audience, EMAIL)) == 21
    # A day later the first run's removals have left the window: 3 of 21 pass.
    third = runs.run_now(ctx, admin, "gb", now=lambda: t0 + timedelta(hours=26))
    assert third.status == "succeeded", third.message
    assert emulator.members(audience, EMAIL) == hashes(range(15, 51, 2))


def test_an_approval_sends_no_removal_of_a_current_member_and_updates_held(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, source: Path
) -> None:
    audience = audience_of(ctx, admin)
    reimport(ctx, admin, source, people(range(2, 51, 2)))
    held = runs.run_now(ctx, admin, "gb")
    assert held.status == "needs_approval"
    # The data is fixed before the approval: 1..29 are back, 31..49 still gone.
    reimport(ctx, admin, source, people(range(1, 30)))
    approval = runs.approve_now(ctx, admin, held.id)
    assert approval.status == "succeeded", approval.errors
    assert approval.counts["removed"] == {"email": 10}
    assert approval.counts["skipped_members"] == {"email": 15}
    assert approval.message is not None
    assert "15 held removal(s) were not sent" in approval.message
    assert emulator.members(audience, EMAIL) == hashes(range(1, 30, 2))
    view = exports.get_export(ctx, admin, "gb")
    assert view.audience is not None
    assert view.audience.identifiers_held == 15 == approval.counts["confirmed"]["email"]


def test_resent_counts_only_acknowledged_batches(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, source: Path
) -> None:
    ctx.settings = ctx.settings.model_copy(update={"http_max_attempts": 1})
    emulator.set_faults(fail_500=1.0)
    failing = runs.run_now(ctx, admin, "gb", full=True)
    emulator.clear_faults()
    assert failing.status == "failed"
    assert failing.counts["resent"] == 0
    assert failing.counts["failed"] == 25
    ok = runs.run_now(ctx, admin, "gb", full=True)
    assert ok.counts["resent"] == 25
    # All 25 were confirmed before the run: re-sends, not adds.
    assert ok.counts["added"] == {}
    assert ok.counts["planned_resends"] == {"email": 25}


def test_a_send_error_during_planning_says_the_plan_is_incomplete(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    connect(ctx, admin, "Snap", share=True)
    path = tmp_path / "t.csv"
    path.write_text(
        "id,email,phone\n" + "".join(f"{i},t{i}@x.com,+4477009{i:05d}\n" for i in range(1, 6))
    )
    store.import_file(ctx, admin, path, key="id", name="t")
    segments.create_segment(
        ctx, admin, "t", dataset="t", rules=parse_rules({"field": "id", "op": ">", "value": 0})
    )
    aud = str(emulator.create_segment_directly("T")["id"])
    exports.add_export(
        ctx, admin,
        ExportSpec(name="t", connection="Snap", segments=("t",), email_field="email",
                   phone_field="phone", audience_id=aud),
    )  # fmt: skip
    ctx.settings = ctx.settings.model_copy(
        update={"http_max_attempts": 1, "http_max_concurrency": 1}
    )
    emulator.set_faults(fail_500=1.0)
    view = runs.run_now(ctx, admin, "t")
    emulator.clear_faults()
    assert view.status == "failed"
    assert view.counts["planning_incomplete"] is True
    assert any("planning stopped early" in e for e in view.errors)


def test_guard_sentence_shows_a_decimal_near_the_threshold(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    connect(ctx, admin, "Snap", share=True)
    path = tmp_path / "r.csv"
    path.write_text("id,email,g\n" + "".join(f"{i},r{i}@x.com,a\n" for i in range(1, 251)))
    store.import_file(ctx, admin, path, key="id", name="r")
    segments.create_segment(
        ctx, admin, "r", dataset="r", rules=parse_rules({"field": "g", "op": "=", "value": "a"})
    )
    aud = str(emulator.create_segment_directly("R")["id"])
    exports.add_export(
        ctx, admin,
        ExportSpec(name="r", connection="Snap", segments=("r",), email_field="email",
                   audience_id=aud),
    )  # fmt: skip
    runs.run_now(ctx, admin, "r")
    path.write_text("id,email,g\n" + "".join(f"{i},r{i}@x.com,a\n" for i in range(52, 251)))
    store.refresh(ctx, admin, "r")
    view = runs.run_now(ctx, admin, "r")
    assert view.status == "needs_approval"
    assert view.message is not None
    assert "51 removal(s), 20.4% of the 250" in view.message
    assert "maximum removal share of 20%" in view.message


@pytest.mark.parametrize("key", ["email", "phone", "maid"])
def test_reject_samples_never_show_an_identifier_key(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, tmp_path: Path, key: str
) -> None:
    connect(ctx, admin, "Snap", share=True)
    path = tmp_path / "k.csv"
    rows = [
        # email, phone, maid: each row has one invalid value of the others' types.
        ("ann@example", "+447700900123", "ad5b7e3c-1111-4222-8333-444455556661"),
        ("bob@example.com", "447700900124", "ad5b7e3c-1111-4222-8333-444455556662"),
        ("cy@example.com", "+447700900125", "ad5b7e3c111142228333444455556663"),
        ("dee@example.com", "+447700900126", "not-a-maid-but-36-characters-long-xx"),
    ]
    path.write_text("email,phone,maid,country\n" + "".join(f"{e},{p},{m},GB\n" for e, p, m in rows))
    store.import_file(ctx, admin, path, key=key, name="k")
    segments.create_segment(
        ctx, admin, "k", dataset="k",
        rules=parse_rules({"field": "country", "op": "=", "value": "GB"}),
    )  # fmt: skip
    aud = str(emulator.create_segment_directly("K")["id"])
    exports.add_export(
        ctx, admin,
        ExportSpec(name="k", connection="Snap", segments=("k",), email_field="email",
                   phone_field="phone", maid_field="maid", default_country=None,
                   audience_id=aud),
    )  # fmt: skip
    view = runs.run_now(ctx, admin, "k")
    text = runs.reject_samples_csv(ctx, admin, view.id)
    samples = [row[0] for row in csv.reader(text.splitlines())][1:]
    assert samples, text
    assert all(sample.startswith("withheld-") for sample in samples), samples
    values = {v for row in rows for v in row} | {v.lower() for row in rows for v in row}
    recorded = str(runs.get_run(ctx, admin, view.id).reject_samples)
    for value in values:
        assert value not in text
        assert value not in recorded


def _guard_sentence(held: int, removes: int, share: float = 0.2) -> str | None:
    """The guard's sentence for one email type holding ``held`` and losing ``removes``."""
    from audiencesync.sync.engine import RunInput, RunOutcome, guard
    from audiencesync.types import IdentifierType

    run = RunInput(
        export_id=1, audience_id="1", segments=("s",), fields={IdentifierType.EMAIL: "e"},
        default_country=None, mirror=True, max_removal_share=share,
    )  # fmt: skip
    outcome = RunOutcome()
    outcome.members = 10
    outcome.accepted = {"email": 1}
    outcome.planned_removes = {"email": removes}
    outcome.held_before = {"email": held}
    decision = guard(run, outcome, held, 7)
    return decision.message if decision is not None else None


@pytest.mark.parametrize(
    ("held", "removes", "share", "shown", "limit"),
    [
        (10_000, 2_004, 0.2, "20.04%", "20%"),  # was "20.0% ... more than ... 20%"
        (1_000, 201, 0.2, "20.1%", "20%"),
        (250, 51, 0.2, "20.4%", "20%"),
        (100_000, 20_001, 0.2, "20.001%", "20%"),
        (1_000, 300, 0.2, "30%", "20%"),
        (1_000, 206, 0.205, "20.6%", "20.5%"),
    ],
)
def test_the_guard_never_shows_a_share_as_its_threshold(
    held: int, removes: int, share: float, shown: str, limit: str
) -> None:
    sentence = _guard_sentence(held, removes, share)
    assert sentence is not None
    assert f"{removes:,} removal(s), {shown} of the {held:,} identifiers" in sentence, sentence
    # The limit as set:
    assert f"maximum removal share of {limit};" in sentence, sentence
    assert shown != limit


def test_a_share_at_the_threshold_is_not_held() -> None:
    assert _guard_sentence(1_000, 200) is None
