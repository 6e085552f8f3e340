"""What the export form offers to pick: audiences read from Snapchat (the emulator), fields
suggested by name and by value, and a preview of what a run would send and reject."""

from __future__ import annotations

from pathlib import Path

import pytest

from audiencesync.control.models import Role
from audiencesync.control.permissions import Actor
from audiencesync.emulator.testing import EmulatorHandle
from audiencesync.errors import NotFoundError, PermissionDeniedError
from audiencesync.identifiers import Normalized, normalize
from audiencesync.profiles import store
from audiencesync.sync import choices, exports
from audiencesync.sync.exports import ExportSpec
from audiencesync.types import IdentifierType
from tests.snap_helpers import PROFILES_CSV, connect, load_profiles


def test_audiences_are_the_customer_lists_of_the_connection_with_their_export(
    ctx, actors: dict[Role, Actor], emulator: EmulatorHandle, tmp_path: Path
) -> None:
    admin = actors[Role.ADMIN]
    connect(ctx, admin, "Snap")
    load_profiles(ctx, admin, tmp_path)
    # 30 customer lists (more than one page of the emulator's list) and a lookalike.
    made = [emulator.create_segment_directly(f"List {n:02d}")["id"] for n in range(30)]
    emulator.create_segment_directly("Lookalike of List 00", source_type="LOOKALIKE")
    exports.add_export(
        ctx, admin,
        ExportSpec(name="gb", connection="Snap", segments=("gb",), email_field="email",
                   audience_id=made[3]),
    )  # fmt: skip
    found = choices.list_audiences(ctx, admin, "Snap")
    assert sorted(a.id for a in found) == sorted(made)  # no lookalike, every page read
    assert [a.name for a in found] == sorted(a.name for a in found)
    assert {a.id: a.used_by for a in found if a.used_by} == {made[3]: "gb"}
    assert {a.ad_account_name for a in found} == {"Emulated Ad Account"}
    # Search: part of the name in any case, or the exact id.
    assert [a.name for a in choices.list_audiences(ctx, admin, "Snap", search="list 1")] == [
        f"List {n:02d}" for n in range(10, 20)
    ]
    assert [a.id for a in choices.list_audiences(ctx, admin, "Snap", search=made[7])] == [made[7]]
    assert choices.list_audiences(ctx, admin, "Snap", search="nothing like it") == []


def test_audiences_are_refused_to_viewers_and_unknown_connections(
    ctx, actors: dict[Role, Actor]
) -> None:
    connect(ctx, actors[Role.ADMIN], "Snap")
    with pytest.raises(PermissionDeniedError):
        choices.list_audiences(ctx, actors[Role.VIEWER], "Snap")
    with pytest.raises(NotFoundError) as caught:
        choices.list_audiences(ctx, actors[Role.CONTRIBUTOR], "Snap")  # not shared
    assert caught.value.field == "connection"


CSV = (
    "customer_id,e_mail,telephone,idfa,contact,notes\n"
    "1,a@example.com,+44 7700 900001,6D92078A-8246-4BA4-AE5B-76104861E7DC,x@example.org,hi\n"
    "2,b@example.com,+44 7700 900002,,y@example.org,\n"
    "3,,07700 900003,6d92078a-8246-4ba4-ae5b-76104861e7dd,z@example.org,ok\n"
)


def test_fields_are_suggested_by_name_then_by_value(ctx, actors, tmp_path: Path) -> None:
    admin = actors[Role.ADMIN]
    source = tmp_path / "people.csv"
    source.write_text(CSV)
    store.import_file(ctx, admin, source, key="customer_id", name="people")
    assert choices.suggest_fields(ctx, admin, "people") == {
        "email_field": "e_mail", "phone_field": "telephone", "maid_field": "idfa",
    }  # fmt: skip
    # Without a telling name, the column whose values read as emails is found.
    renamed = tmp_path / "renamed.csv"
    renamed.write_text(CSV.replace("e_mail", "first").replace("telephone", "second"))
    store.import_file(ctx, admin, renamed, key="customer_id", name="renamed")
    suggested = choices.suggest_fields(ctx, admin, "renamed")
    assert suggested["email_field"] in ("first", "contact")
    assert "phone_field" not in suggested  # "07700..." has no country: not guessed
    assert suggested["maid_field"] == "idfa"


def test_preview_counts_what_a_run_would_send_and_reject(ctx, actors, tmp_path: Path) -> None:
    admin = actors[Role.ADMIN]
    load_profiles(ctx, admin, tmp_path)
    previews = choices.preview_fields(
        ctx, admin, "customers", {"email_field": "email", "phone_field": "phone"}
    )
    by_kind = {p.kind: p for p in previews}
    rows = [line.split(",") for line in PROFILES_CSV.splitlines()[1:]]
    # An independent reading of the same file, value by value.
    for kind, index in ((IdentifierType.EMAIL, 1), (IdentifierType.PHONE, 2)):
        values = [row[index] for row in rows]
        outcomes = [normalize(kind, v) for v in values]
        accepted = [o.value for o in outcomes if isinstance(o, Normalized)]
        empty = sum(1 for v in values if not v.strip())
        preview = by_kind[kind.value]
        assert preview.sampled == len(rows)
        assert preview.empty == empty
        assert preview.rejected == len(values) - empty - len(accepted)
        assert preview.rejected_share == pytest.approx(preview.rejected / (len(values) - empty))
        assert list(preview.samples) == accepted[: choices.PREVIEW_VALUES]
    assert by_kind["email"].words == "Email"
    assert by_kind["email"].rejected == 1  # "not-an-email"
