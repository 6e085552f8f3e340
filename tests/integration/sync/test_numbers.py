"""Every figure a run records, checked against a computation of its own.

The profiles are generated with empty, blank, invalid and valid values in each field; the
expected figures are counted here with DuckDB (empties, members) and the scalar
normalizer (accepted values, hashes), never with the engine's code, and the confirmed
figures against the emulator's own member lists.
"""

from __future__ import annotations

import csv
import random
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pytest

from audiencesync.control.context import Context
from audiencesync.control.models import Role
from audiencesync.control.permissions import Actor
from audiencesync.emulator.testing import EmulatorHandle
from audiencesync.identifiers import hash_value
from audiencesync.profiles import store
from audiencesync.segments import service as segments
from audiencesync.segments.rules import parse_rules
from audiencesync.sync import exports, runs
from audiencesync.sync.exports import ExportSpec
from audiencesync.types import IdentifierType
from tests.snap_helpers import connect

SCHEMAS = {"email": "EMAIL_SHA256", "phone": "PHONE_SHA256", "maid": "MOBILE_AD_ID_SHA256"}
FIELDS = {IdentifierType.EMAIL: "email", IdentifierType.PHONE: "phone", IdentifierType.MAID: "maid"}


def _value(rng: random.Random, kind: str, row: int) -> str:
    bucket = rng.random()
    if bucket < 0.25:
        return rng.choice(["", "   ", "\t"])  # empty: missing or blank
    if bucket < 0.40:
        return {
            "email": rng.choice(["not-an-email", "a@b", "two@@example.com"]),
            "phone": rng.choice(["12", "+999 1", "hello"]),
            "maid": rng.choice(["00000000-0000-0000-0000-000000000000", "xyz", "1234"]),
        }[kind]
    if kind == "email":
        return f"  Person{row % 170}@Example.com "  # some members share an email
    if kind == "phone":
        return f"+44 7700 9{row:05d}"
    return str(uuid.UUID(int=rng.getrandbits(128)))


def write_profiles(path: Path, rows: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "email", "phone", "maid", "country"])
        for row in range(1, rows + 1):
            writer.writerow(
                [row, *(_value(rng, kind, row) for kind in ("email", "phone", "maid")), "GB"]
            )


def expected_figures(path: Path) -> dict[str, Any]:
    """The figures of a first run over ``path``, computed without the engine."""
    con = duckdb.connect()
    table = con.execute(
        f"SELECT customer_id, email, phone, maid FROM read_csv('{path}', all_varchar=true)"
    ).fetchall()
    members = len(table)
    empty = {
        kind: int(
            con.execute(
                f"SELECT count(*) FROM read_csv('{path}', all_varchar=true) "
                f"WHERE {kind} IS NULL OR trim({kind}, ' \t') = ''"
            ).fetchone()[0]  # type: ignore[index]
        )
        for kind in SCHEMAS
    }
    accepted = dict.fromkeys(SCHEMAS, 0)
    hashes: dict[str, set[str]] = {kind: set() for kind in SCHEMAS}
    without = 0
    for _, *values in table:
        usable = False
        for (kind, name), value in zip(FIELDS.items(), values, strict=True):
            hashed = hash_value(kind, value)
            if hashed is not None:
                usable = True
                accepted[name] += 1
                hashes[name].add(hashed)
        without += not usable
    present = {kind: members - empty[kind] for kind in SCHEMAS}
    return {
        "members": members,
        "members_without_identifier": without,
        "empty": empty,
        "values_present": present,
        "accepted": accepted,
        "invalid": {kind: present[kind] - accepted[kind] for kind in SCHEMAS},
        "hashes": hashes,
    }


@pytest.fixture
def admin(actors: dict[Role, Actor]) -> Actor:
    return actors[Role.ADMIN]


@pytest.fixture
def source(ctx: Context, admin: Actor, emulator: EmulatorHandle, tmp_path: Path) -> Path:
    connect(ctx, admin, "Snap")
    path = tmp_path / "people.csv"
    write_profiles(path, 600, seed=11)
    store.import_file(ctx, admin, path, key="customer_id", name="people")
    segments.create_segment(
        ctx, admin, "all", dataset="people",
        rules=parse_rules({"field": "customer_id", "op": "is not null"}),
    )  # fmt: skip
    audience = str(emulator.create_segment_directly("People")["id"])
    exports.add_export(
        ctx, admin,
        ExportSpec(name="people", connection="Snap", segments=("all",), email_field="email",
                   phone_field="phone", maid_field="maid", audience_id=audience),
    )  # fmt: skip
    return path


def test_every_figure_of_a_run_matches_an_independent_count(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, source: Path
) -> None:
    want = expected_figures(source)
    view = runs.run_now(ctx, admin, "people")
    assert view.status == "succeeded", view.errors
    c = view.counts
    assert c["members"] == want["members"] == 600
    assert c["members_without_identifier"] == want["members_without_identifier"] > 0
    assert c["empty"] == want["empty"]
    assert c["values_present"] == want["values_present"]
    assert c["accepted"] == want["accepted"]
    for kind in SCHEMAS:
        invalid = sum(c["rejected"].get(kind, {}).values())
        assert invalid == want["invalid"][kind] > 0
        assert "empty" not in c["rejected"].get(kind, {})
        # Rejects never exceed the values present; present = accepted + invalid.
        assert invalid <= c["values_present"][kind]
        assert c["accepted"][kind] + invalid == c["values_present"][kind]
        assert c["values_present"][kind] + c["empty"][kind] == c["members"]
        # Planned adds are the distinct hashes; all were sent and are what Snapchat holds.
        members_at_snapchat = emulator.members(view_audience(ctx, admin), SCHEMAS[kind])
        assert members_at_snapchat == want["hashes"][kind]
        assert c["planned_adds"][kind] == len(want["hashes"][kind])
        assert c["added"][kind] == len(want["hashes"][kind])
        assert c["confirmed"][kind] == len(members_at_snapchat)
    assert c["planned_removes"] == {}
    assert c["removed"] == {}
    assert c["resent"] == 0
    assert c["retries"] == 0
    assert c["throttled"] == 0
    # Every sample is a profile key with its type and reason, and there are no empties.
    csv_text = runs.reject_samples_csv(ctx, admin, view.id)
    rows = list(csv.reader(csv_text.splitlines()))
    assert rows[0] == ["profile_key", "identifier_type", "reason"]
    assert len(rows) - 1 == sum(len(s) for s in view.reject_samples.values())
    assert {row[2] for row in rows[1:]} <= {
        "not_an_email", "phone_invalid", "maid_invalid", "phone_no_country_code",
    }  # fmt: skip
    assert "@" not in csv_text
    assert "+44" not in csv_text


def view_audience(ctx: Context, admin: Actor) -> str:
    return exports.get_export(ctx, admin, "people").audience_id


def test_a_dry_run_says_what_it_would_do_and_has_no_sent_figures(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, source: Path
) -> None:
    want = expected_figures(source)
    emulator.clear_requests()
    view = runs.run_now(ctx, admin, "people", dry_run=True)
    assert view.status == "succeeded"
    c = view.counts
    assert c["dry_run"] is True
    assert c["planned_adds"] == {kind: len(want["hashes"][kind]) for kind in SCHEMAS}
    assert c["added"] == {}
    assert c["removed"] == {}
    for sent_figure in ("requests", "retries", "throttled", "bytes_sent", "resent", "failed"):
        assert sent_figure not in c
    assert not any("users" in kind for kind in emulator.request_counts())
    lines = "\n".join(runs_summary(view))
    assert "would add" in lines
    assert "sent:" not in lines


def runs_summary(view: runs.RunView) -> list[str]:
    from audiencesync.cli.runs import summary_lines

    return summary_lines(view)


def test_retries_and_throttled_requests_are_the_ones_snapchat_answered(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, source: Path
) -> None:
    emulator.clear_requests()
    emulator.set_faults(script=["429", "429", "500"])
    view = runs.run_now(ctx, admin, "people")
    assert view.status == "succeeded", view.errors
    answered = emulator.request_counts()
    throttled = sum(by_status.get("429", 0) for by_status in answered.values())
    failed = sum(by_status.get("500", 0) for by_status in answered.values())
    assert (throttled, failed) == (2, 1)
    assert view.counts["throttled"] == throttled
    assert view.counts["retries"] == failed
    assert view.counts["requests"] == 3  # one acknowledged request per type


def test_the_save_check_reports_empty_and_invalid_apart(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    connect(ctx, admin, "Snap")
    path = tmp_path / "maids.csv"
    rng = random.Random(5)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "email", "maid"])
        for row in range(1, 1201):  # more than the 1,000 rows sampled
            maid = "" if row % 4 else str(uuid.UUID(int=rng.getrandbits(128)))
            if row % 40 == 0:
                maid = "not-a-maid"
            writer.writerow([row, f"p{row}@example.com", maid])
    store.import_file(ctx, admin, path, key="customer_id", name="maids")
    segments.create_segment(
        ctx, admin, "m", dataset="maids",
        rules=parse_rules({"field": "customer_id", "op": "is not null"}),
    )  # fmt: skip
    con = duckdb.connect()
    sample = con.execute(
        f"SELECT maid FROM read_csv('{path}', all_varchar=true) LIMIT 1000"
    ).fetchall()
    empty = sum(1 for (maid,) in sample if maid is None or not maid.strip())
    invalid = sum(1 for (maid,) in sample if maid and hash_value("maid", maid) is None)
    assert (empty, invalid) == (750, 25)
    view = exports.add_export(
        ctx, admin,
        ExportSpec(name="m", connection="Snap", segments=("m",), email_field="email",
                   maid_field="maid", create_audience=True),
    )  # fmt: skip
    v = view.validation
    assert v["sampled_rows"] == 1000
    assert v["empty"]["maid"] == empty
    assert v["empty_share"]["maid"] == 0.75
    assert v["invalid"]["maid"] == invalid
    assert v["invalid_share"]["maid"] == round(invalid / (1000 - empty), 4)
    assert v["empty"]["email"] == 0
    assert v["invalid_share"]["email"] == 0.0
    (note,) = [n for n in exports.validation_notes(v) if n.startswith("mobile ad id:")]
    assert note == (
        "mobile ad id: 750 of 1,000 sampled rows empty (75.0%); 25 of the 250 values present "
        "invalid (10.0%)"
    )


def test_reject_sample_keys_never_become_spreadsheet_formulas(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    connect(ctx, admin, "Snap")
    path = tmp_path / "odd.csv"
    good = "".join(f"k{i},p{i}@example.com\n" for i in range(3))  # the save check needs half
    path.write_text('key,email\n"=HYPERLINK(""x"")",bad\n-7,bad\n@home,bad\n' + good)
    store.import_file(ctx, admin, path, key="key", name="odd")
    segments.create_segment(
        ctx, admin, "odd", dataset="odd", rules=parse_rules({"field": "key", "op": "is not null"})
    )
    audience = str(emulator.create_segment_directly("Odd")["id"])
    exports.add_export(
        ctx, admin,
        ExportSpec(name="odd", connection="Snap", segments=("odd",), email_field="email",
                   audience_id=audience),
    )  # fmt: skip
    view = runs.run_now(ctx, admin, "odd", dry_run=True)
    rows = list(csv.reader(runs.reject_samples_csv(ctx, admin, view.id).splitlines()))[1:]
    assert sorted(row[0] for row in rows) == ['\'=HYPERLINK("x")', "'@home", "-7"]


def test_a_full_run_counts_only_new_adds_and_the_rest_as_resent(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, source: Path
) -> None:
    """--full re-sends every current identifier: only those not confirmed before the run
    are adds (planned and sent), the others are ``resent``; the run table, the runs chart
    and the CLI summary show the new adds, checked against the emulator's member count."""
    from audiencesync.cli.runs import summary_lines
    from audiencesync.web.charts import export_chart

    audience = exports.get_export(ctx, admin, "people").audience_id
    segments.update_segment(
        ctx, admin, "all", rules=parse_rules({"field": "customer_id", "op": "<=", "value": 400})
    )
    first = runs.run_now(ctx, admin, "people")
    assert first.status == "succeeded", first.errors
    before = sum(emulator.member_counts(audience).values())
    assert before > 0
    # A full run of the same members adds nothing: every identifier is a re-send.
    same = runs.run_now(ctx, admin, "people", full=True)
    assert same.status == "succeeded", same.errors
    assert sum(emulator.member_counts(audience).values()) == before
    assert sum(same.counts["added"].values()) == 0
    assert sum(same.counts["planned_adds"].values()) == 0
    assert same.counts["resent"] == before == sum(same.counts["planned_resends"].values())
    # Now with 200 more members: the new ones are adds, the rest re-sends.
    segments.update_segment(
        ctx, admin, "all", rules=parse_rules({"field": "customer_id", "op": "is not null"})
    )
    grown = runs.run_now(ctx, admin, "people", full=True)
    assert grown.status == "succeeded", grown.errors
    after = sum(emulator.member_counts(audience).values())
    assert after > before
    new = after - before  # the independent figure: what Snapchat holds more than before
    assert sum(grown.counts["added"].values()) == new
    assert sum(grown.counts["planned_adds"].values()) == new
    assert grown.counts["resent"] == before
    assert sum(grown.counts["confirmed"].values()) == after
    # The runs table's Added column, the runs chart and the run summary say the same.
    listed = {v.id: v for v in runs.list_runs(ctx, admin, export="people")}
    chart = export_chart(list(listed.values()), [])["runs"]
    added_by_run = dict(zip(chart["run_ids"], chart["added"], strict=True))
    assert added_by_run[same.id] == 0
    assert added_by_run[grown.id] == new
    text = "\n".join(summary_lines(listed[grown.id]))
    assert f"re-sent {before:,}" in text, text
    shown_adds = ", ".join(f"{n:,} {k}" for k, n in sorted(grown.counts["added"].items()))
    assert f"added {shown_adds};" in text, text
    # A dry --full run says what it would add and what it would re-send, apart.
    dry = runs.run_now(ctx, admin, "people", full=True, dry_run=True)
    assert sum(dry.counts["planned_adds"].values()) == 0
    assert sum(dry.counts["planned_resends"].values()) == after
    dry_text = "\n".join(summary_lines(dry))
    assert "would add 0;" in dry_text, dry_text
    assert "would re-send " in dry_text, dry_text
