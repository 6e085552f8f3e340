"""Consent, suppression lists and erasure on the emulator over real HTTP (issue 16)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from audiencesync.control.context import Context
from audiencesync.control.models import Role, utcnow
from audiencesync.control.permissions import Actor
from audiencesync.control.privacy_models import Erasure
from audiencesync.emulator.testing import EmulatorHandle
from audiencesync.errors import ConflictError, PermissionDeniedError, UserInputError
from audiencesync.identifiers import hash_value
from audiencesync.profiles import store
from audiencesync.segments import service as segments
from audiencesync.segments.rules import parse_rules
from audiencesync.sync import exports, privacy, runs
from audiencesync.sync.exports import ExportSpec
from audiencesync.sync.snapshot import Snapshot
from audiencesync.types import IdentifierType
from tests.snap_helpers import connect

EMAIL = "EMAIL_SHA256"
PHONE = "PHONE_SHA256"
PROFILES = 200
#: The control database matters little to these tests: SQLite only, but for the erasure
#: across exports, which runs on PostgreSQL too.
SQLITE_ONLY = pytest.mark.parametrize("database_url", [None], ids=["sqlite"])


def email_of(i: int) -> str:
    return f"Person.{i}@Example.com"


def phone_of(i: int) -> str:
    return f"+1 415 555 {i:04d}"


def h(kind: IdentifierType, value: str) -> str:
    hashed = hash_value(kind, value)
    assert hashed is not None
    return hashed


def write_csv(path: Path, *, no_consent: set[int] = frozenset(), status: bool = False) -> Path:
    """Profiles 1..PROFILES: email, phone, a boolean consent (or a text status), a tier."""
    lines = ["customer_id,email,phone,consent,tier"]
    for i in range(1, PROFILES + 1):
        if status:
            consent = "withdrawn" if i in no_consent else ("Opted_In " if i % 2 else "yes")
        else:
            consent = "false" if i in no_consent else "true"
        lines.append(f"{i},{email_of(i)},{phone_of(i)},{consent},{'gold' if i % 2 else 'blue'}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def admin(actors: dict[Role, Actor]) -> Actor:
    return actors[Role.ADMIN]


def setup_data(ctx: Context, admin: Actor, tmp_path: Path, **options: object) -> Path:
    source = write_csv(tmp_path / "customers.csv", **options)  # type: ignore[arg-type]
    store.import_file(ctx, admin, source, key="customer_id", name="customers")
    for name, rules in {
        "everyone": {"field": "customer_id", "op": "is not null"},
        "gold": {"field": "tier", "op": "=", "value": "gold"},
    }.items():
        segments.create_segment(ctx, admin, name, dataset="customers", rules=parse_rules(rules))
    return source


def add_export(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, name: str, **spec: object
) -> str:
    audience = str(emulator.create_segment_directly(name)["id"])
    values: dict[str, object] = {
        "connection": "Snap", "segments": ("everyone",), "email_field": "email",
        "audience_id": audience, **spec,
    }  # fmt: skip
    exports.add_export(ctx, admin, ExportSpec(name=name, **values))  # type: ignore[arg-type]
    return audience


def emails(numbers: range | list[int] | set[int]) -> set[str]:
    return {h(IdentifierType.EMAIL, email_of(i)) for i in numbers}


ALL = range(1, PROFILES + 1)


@SQLITE_ONLY
def test_consent_withdrawn_by_100_profiles_is_removed_by_the_next_mirror_run(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    connect(ctx, admin, "Snap")
    source = setup_data(ctx, admin, tmp_path)
    audience = add_export(ctx, admin, emulator, "mirror", consent_field="consent")
    first = runs.run_now(ctx, admin, "mirror")
    assert first.status == "succeeded", first.errors
    assert emulator.members(audience, EMAIL) == emails(ALL)
    assert first.counts["no_consent"] == 0
    withdrawn = set(range(1, 101))
    write_csv(source, no_consent=withdrawn)
    store.refresh(ctx, admin, "customers")
    second = runs.run_now(ctx, admin, "mirror")
    assert second.status == "succeeded", second.errors
    assert emulator.members(audience, EMAIL) == emails(set(ALL) - withdrawn)
    assert second.counts["members"] == PROFILES
    assert second.counts["no_consent"] == 100
    assert second.counts["removed"] == {"email": 100}
    # Half the audience, yet not held by the removal guard: withdrawn consent wins.
    assert second.counts["privacy_removes"] == {"email": 100}
    assert "guard" not in second.counts
    # Never rejects: the profiles without consent are not counted as invalid values.
    assert second.counts["rejected"] == {}
    assert second.counts["accepted"] == {"email": PROFILES - 100}


@SQLITE_ONLY
def test_consent_values_and_add_only_withdrawal_wins(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    connect(ctx, admin, "Snap")
    source = setup_data(ctx, admin, tmp_path, status=True)
    with pytest.raises(UserInputError, match="true/false column"):
        add_export(ctx, admin, emulator, "bad", consent_field="consent")
    audience = add_export(
        ctx, admin, emulator, "adds", mode="add-only", consent_field="consent",
        consent_values=("opted_in", "YES"),
    )  # fmt: skip
    saved = exports.get_export(ctx, admin, "adds")
    assert saved.validation["consent"] == {"sampled_members": PROFILES, "holding": PROFILES}
    # A consent mistake (values the column never holds) is told at save: it would empty
    # the audience at once, privacy removals skipping the removal guard.
    wrong = exports.update_export(
        ctx, admin, "adds", replace(exports.spec_of(saved), consent_values=("true",))
    )
    assert wrong.validation["consent"]["holding"] == 0
    (note,) = [n for n in exports.validation_notes(wrong.validation) if "consent" in n]
    assert note.startswith(f"consent: 0 of {PROFILES} sampled segment members hold consent")
    assert "removes every member" in note
    exports.update_export(ctx, admin, "adds", exports.spec_of(saved))
    assert runs.run_now(ctx, admin, "adds").status == "succeeded"
    assert emulator.members(audience, EMAIL) == emails(ALL)
    write_csv(source, no_consent={5, 6, 7}, status=True)
    store.refresh(ctx, admin, "customers")
    view = runs.run_now(ctx, admin, "adds")
    assert view.counts["no_consent"] == 3
    assert view.counts["removed"] == {"email": 3}
    assert emulator.members(audience, EMAIL) == emails(set(ALL) - {5, 6, 7})


@SQLITE_ONLY
def test_suppression_list_wins_over_add_only_and_full_runs(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    connect(ctx, admin, "Snap")
    setup_data(ctx, admin, tmp_path)
    audience = add_export(ctx, admin, emulator, "adds", mode="add-only")
    other = add_export(ctx, admin, emulator, "other")
    assert runs.run_now(ctx, admin, "adds").status == "succeeded"
    assert runs.run_now(ctx, admin, "other").status == "succeeded"
    assert emulator.members(audience, EMAIL) == emails(ALL)
    suppressed = set(range(101, 151))
    # A list file with a header naming the column, raw emails written as users type them.
    listing = tmp_path / "optout.csv"
    listing.write_text(
        "id,address\n" + "".join(f"{i}, {email_of(i).upper()} \n" for i in sorted(suppressed))
    )
    view = privacy.create_list(
        ctx, admin, "opt-outs", kind="email", file=listing, column="address", exports=["adds"]
    )
    assert (view.size, view.exports, view.all_exports) == (50, ("adds",), False)
    first = runs.run_now(ctx, admin, "adds")
    assert first.status == "succeeded", first.errors
    assert first.counts["suppressed"] == {"email": 50}
    assert first.counts["removed"] == {"email": 50}
    assert emulator.members(audience, EMAIL) == emails(set(ALL) - suppressed)
    # The other export is not named by the list: untouched.
    assert emulator.members(other, EMAIL) == emails(ALL)
    for full in (False, True):
        later = runs.run_now(ctx, admin, "adds", full=full)
        assert later.status == "succeeded", later.errors
        assert later.counts["suppressed"] == {"email": 50}
        # A --full run re-sends what is held: counted as resent, never as added.
        assert later.counts["added"] == {}
        assert later.counts["resent"] == (PROFILES - 50 if full else 0)
        assert emulator.members(audience, EMAIL) == emails(set(ALL) - suppressed)
    assert Snapshot.of(ctx, 1, audience).counts() == {"email": PROFILES - 50}
    # Hashed lists: 64 hex characters, anything else rejected with a reason.
    hashed = tmp_path / "hashed.txt"
    hashed.write_text(h(IdentifierType.EMAIL, email_of(7)).upper() + "\nnot-a-hash\n\n")
    made = privacy.create_list(ctx, admin, "hashed", kind="email", file=hashed, hashed=True,
                               all_exports=True)  # fmt: skip
    assert made.size == 1
    assert made.rejected == {"not_a_sha256_hash": 1, "empty": 1}
    mirror = runs.run_now(ctx, admin, "other")
    assert mirror.counts["suppressed"] == {"email": 1}
    assert emulator.members(other, EMAIL) == emails(set(ALL) - {7})
    privacy.remove_list(ctx, admin, "opt-outs")
    assert runs.run_now(ctx, admin, "adds").counts["added"] == {"email": 50}


@SQLITE_ONLY
def test_suppression_list_from_a_dataset_column_and_only_admins(
    ctx: Context, admin: Actor, actors: dict[Role, Actor], emulator: EmulatorHandle,
    tmp_path: Path,
) -> None:  # fmt: skip
    connect(ctx, admin, "Snap")
    setup_data(ctx, admin, tmp_path)
    optout = tmp_path / "optout.csv"
    optout.write_text("key,phone\n1,+1 415 555 0003\n2,+1 415 555 0004\n3,garbage\n")
    store.import_file(ctx, admin, optout, key="key", name="optouts")
    audience = add_export(ctx, admin, emulator, "phones", email_field=None, phone_field="phone")
    with pytest.raises(PermissionDeniedError):
        privacy.create_list(ctx, actors[Role.CONTRIBUTOR], "x", kind="phone", dataset="optouts",
                            column="phone", all_exports=True)  # fmt: skip
    with pytest.raises(UserInputError, match="which exports the list applies to"):
        privacy.create_list(ctx, admin, "x", kind="phone", dataset="optouts", column="phone")
    view = privacy.create_list(
        ctx, admin, "phone-optouts", kind="phone", dataset="optouts", column="phone",
        all_exports=True,
    )  # fmt: skip
    assert view.size == 2
    assert view.rejected == {"phone_invalid": 1}
    run = runs.run_now(ctx, admin, "phones")
    assert run.counts["suppressed"] == {"phone": 2}
    expected = {h(IdentifierType.PHONE, phone_of(i)) for i in ALL if i not in (3, 4)}
    assert emulator.members(audience, PHONE) == expected


def test_erasure_removes_a_person_from_three_exports_on_two_connections(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    connect(ctx, admin, "Snap")
    connect(ctx, admin, "Snap B")
    setup_data(ctx, admin, tmp_path)
    first = add_export(ctx, admin, emulator, "one", phone_field="phone")
    second = add_export(ctx, admin, emulator, "two", mode="add-only", connection="Snap B")
    third = add_export(ctx, admin, emulator, "three", segments=("gold",), connection="Snap B")
    untouched = add_export(ctx, admin, emulator, "four", segments=("gold",),
                           email_field=None, phone_field="phone")  # fmt: skip
    for name in ("one", "two", "three", "four"):
        assert runs.run_now(ctx, admin, name).status == "succeeded"
    person = 7  # in "gold" (odd)
    view = privacy.erase(ctx, admin, emails=[email_of(person)], phones=["(415) 555-0007"],
                         default_country="us")  # fmt: skip
    assert view.status == "succeeded", view.exports
    assert view.identifiers == {"email": 1, "phone": 1}
    # DELETEs go to every audience (Snapchat ignores absent ones); "held" is what each
    # export's snapshot recorded of the person.
    both = {"email": 1, "phone": 1}
    removed = {name: item["removed"] for name, item in view.exports.items()}
    assert removed == dict.fromkeys(("one", "two", "three", "four"), both)
    assert {name: item.get("held") for name, item in view.exports.items()} == {
        "one": {"email": 1, "phone": 1},
        "two": {"email": 1},
        "three": {"email": 1},
        "four": {"phone": 1},
    }
    erased_email = h(IdentifierType.EMAIL, email_of(person))
    erased_phone = h(IdentifierType.PHONE, phone_of(person))
    for audience in (first, second, third):
        assert erased_email not in emulator.members(audience, EMAIL)
    assert erased_phone not in emulator.members(first, PHONE)
    assert erased_phone not in emulator.members(untouched, PHONE)
    assert len(emulator.members(first, EMAIL)) == PROFILES - 1
    erasure_runs = [r for r in runs.list_runs(ctx, admin, limit=20) if r.trigger == "erasure"]
    assert len(erasure_runs) == 4
    # Later runs, --full included, never send the person again.
    for name, audience in (("one", first), ("two", second), ("three", third)):
        again = runs.run_now(ctx, admin, name, full=True)
        assert again.status == "succeeded", again.errors
        assert again.counts["suppressed"]["email"] == 1
        assert erased_email not in emulator.members(audience, EMAIL)
    assert erased_phone not in emulator.members(first, PHONE)
    assert privacy.erased_summary(ctx) == {"email": 1, "phone": 1}


@SQLITE_ONLY
def test_erasure_interrupted_mid_way_resumes_and_ends_exact(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    connect(ctx, admin, "Snap")
    setup_data(ctx, admin, tmp_path)
    audiences = {
        name: add_export(ctx, admin, emulator, name, mode=mode)
        for name, mode in (("a", "mirror"), ("b", "add-only"), ("c", "mirror"))
    }
    for name in audiences:
        assert runs.run_now(ctx, admin, name).status == "succeeded"
    ctx.settings = ctx.settings.model_copy(update={"http_max_attempts": 2})

    def break_removals(name: str) -> None:
        if name == "a":  # after the first export: every removal fails from here on
            emulator.set_faults(fail_500=1.0, only_kinds=["remove_users"])

    people = [email_of(i) for i in (11, 12, 13)]
    view = privacy.erase(ctx, admin, emails=people, after_export=break_removals)
    assert view.status == "partially_succeeded"
    assert view.exports["a"]["status"] == "done"
    assert {view.exports[n]["status"] for n in ("b", "c")} == {"pending"}
    assert view.exports["b"]["message"]
    erased = emails([11, 12, 13])
    assert not erased & emulator.members(audiences["a"], EMAIL)
    assert erased <= emulator.members(audiences["b"], EMAIL)
    assert privacy.unfinished_erasures(ctx) == [view.id]
    emulator.clear_faults()
    # An erasure another process is working on (its lease not expired) is left to it.
    with ctx.db.session() as session:
        row = session.get(Erasure, view.id)
        assert row is not None
        row.lease_until = utcnow() + timedelta(minutes=5)
    with pytest.raises(ConflictError, match="under way in another process"):
        privacy.resume_erasure(ctx, admin, view.id)
    assert privacy.resume_unfinished(ctx, admin) == []
    with ctx.db.session() as session:
        row = session.get(Erasure, view.id)
        assert row is not None
        row.lease_until = utcnow() - timedelta(seconds=1)
    # What the scheduler does every hour.
    (resumed,) = privacy.resume_unfinished(ctx, admin)
    assert resumed.status == "succeeded", resumed.exports
    assert {n: item["removed"] for n, item in resumed.exports.items()} == {
        n: {"email": 3} for n in audiences
    }
    for name, audience in audiences.items():
        assert emulator.members(audience, EMAIL) == emails(ALL) - erased, name
        export_id = {"a": 1, "b": 2, "c": 3}[name]
        assert Snapshot.of(ctx, export_id, audience).counts() == {"email": PROFILES - 3}
    assert privacy.unfinished_erasures(ctx) == []
