"""Export definitions: checked against Snapchat (the emulator) and the data, never run on save."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from audiencesync.control import audit
from audiencesync.control.context import Context
from audiencesync.control.models import Role
from audiencesync.control.permissions import Actor
from audiencesync.emulator.testing import EmulatorHandle
from audiencesync.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    UserInputError,
)
from audiencesync.segments import service as segments
from audiencesync.sync import connections, exports
from audiencesync.sync.exports import ExportSpec
from tests.snap_helpers import connect, load_profiles


@pytest.fixture
def setup(ctx: Context, actors: dict[Role, Actor], emulator: EmulatorHandle, tmp_path: Path) -> str:
    """A shared connection, profiles, segments and an existing customer-list audience."""
    connect(ctx, actors[Role.ADMIN], "Shared", share=True)
    connect(ctx, actors[Role.ADMIN], "Admins only")
    load_profiles(ctx, actors[Role.ADMIN], tmp_path)
    audience = emulator.create_segment_directly("Loyal customers", source_type="FIRST_PARTY")
    return str(audience["id"])


def spec(audience_id: str | None, **changes: object) -> ExportSpec:
    base = ExportSpec(
        name="loyal",
        connection="Shared",
        segments=("everyone",),
        email_field="email",
        audience_id=audience_id,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_export_with_an_existing_audience_is_saved_not_run(
    ctx: Context, actors: dict[Role, Actor], emulator: EmulatorHandle, setup: str
) -> None:
    emulator.clear_requests()
    view = exports.add_export(ctx, actors[Role.CONTRIBUTOR], spec(setup, phone_field="phone"))
    assert view.audience_id == setup
    assert view.audience_name == "Loyal customers"
    assert view.ad_account_id == emulator.ad_account_id
    assert view.dataset == "customers"
    assert view.segments == ("everyone",)
    assert view.mode == "mirror"
    assert view.last_run_status is None
    # One of four sampled emails is not an email; phones without country code are rejected.
    assert view.validation["invalid_share"]["email"] == 0.25
    assert view.validation["sampled_rows"] == 4
    assert emulator.member_counts(setup) == {} or sum(emulator.member_counts(setup).values()) == 0
    kinds = emulator.request_counts()
    assert not any("users" in kind for kind in kinds)
    assert audit.list_entries(ctx, actors[Role.ADMIN], target="export:loyal")[0].action == (
        "export.create"
    )


def test_export_can_create_its_audience(
    ctx: Context, actors: dict[Role, Actor], emulator: EmulatorHandle, setup: str
) -> None:
    view = exports.add_export(
        ctx,
        actors[Role.ADMIN],
        spec(None, create_audience=True, audience_name="Fresh", retention_days=180),
    )
    assert view.audience_name == "Fresh"
    assert view.audience_id.isdigit()
    assert view.audience_id != setup
    assert view.ad_account_id == emulator.ad_account_id
    assert emulator.member_counts(view.audience_id) is not None  # the emulator knows it


REFUSALS = [
    ({"audience_id": "99999999"}, UserInputError, "Snapchat has no audience 99999999"),
    ({"audience_id": "abc"}, UserInputError, "is not a Snapchat audience id"),
    ({"email_field": "mail"}, UserInputError, "field 'mail' is not a column of dataset"),
    ({"email_field": None}, UserInputError, "needs an identifier field"),
    ({"segments": ()}, UserInputError, "needs at least one segment"),
    ({"segments": ("nope",)}, NotFoundError, "no segment named 'nope'"),
    ({"mode": "sync"}, UserInputError, "unknown mode 'sync'"),
    ({"schedule": "every day"}, UserInputError, "is not a schedule"),
    ({"default_country": "USA"}, UserInputError, "unknown default country .USA."),
    ({"default_country": "XX"}, UserInputError, "unknown default country .XX."),
    ({"connection": "Admins only"}, NotFoundError, "no connection named 'Admins only' you can"),
    ({"connection": "Nope"}, NotFoundError, "no connection named 'Nope'"),
    ({"email_field": "country"}, UserInputError, "are not valid email identifiers"),
]


@pytest.mark.parametrize(("changes", "error", "message"), REFUSALS)
def test_refusals_say_what_is_wrong(
    ctx: Context,
    actors: dict[Role, Actor],
    setup: str,
    changes: dict[str, object],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        exports.add_export(ctx, actors[Role.CONTRIBUTOR], spec(**{"audience_id": setup, **changes}))
    assert exports.list_exports(ctx, actors[Role.ADMIN]) == []


def test_a_foreign_or_non_customer_list_audience_is_refused(
    ctx: Context, actors: dict[Role, Actor], emulator: EmulatorHandle, setup: str
) -> None:
    foreign = emulator.create_segment_directly(
        "Theirs", ad_account_id=emulator.other_ad_account_id, source_type="FIRST_PARTY"
    )
    with pytest.raises(UserInputError, match="does not reach"):
        exports.add_export(ctx, actors[Role.ADMIN], spec(str(foreign["id"])))
    lookalike = emulator.create_segment_directly("Lookalike", source_type="LOOKALIKE")
    with pytest.raises(UserInputError, match="is not a customer list"):
        exports.add_export(ctx, actors[Role.ADMIN], spec(str(lookalike["id"])))


def test_export_permissions_by_role(ctx: Context, actors: dict[Role, Actor], setup: str) -> None:
    admin, contributor, viewer = actors[Role.ADMIN], actors[Role.CONTRIBUTOR], actors[Role.VIEWER]
    with pytest.raises(PermissionDeniedError, match="victor is a viewer"):
        exports.add_export(ctx, viewer, spec(setup))
    exports.add_export(ctx, admin, spec(setup, name="admins", connection="Admins only"))
    exports.add_export(
        ctx, contributor, spec(None, name="shared", create_audience=True, audience_name="Mine")
    )
    # Contributors cannot touch exports on admin-only connections, viewers touch none.
    with pytest.raises(PermissionDeniedError, match="for administrators only"):
        exports.set_enabled(ctx, contributor, "admins", enabled=False)
    with pytest.raises(PermissionDeniedError, match="for administrators only"):
        exports.remove_export(ctx, contributor, "admins")
    with pytest.raises(PermissionDeniedError):
        exports.set_enabled(ctx, viewer, "shared", enabled=False)
    exports.set_enabled(ctx, contributor, "shared", enabled=False)
    # Everyone reads.
    assert {v.name for v in exports.list_exports(ctx, viewer)} == {"admins", "shared"}


def test_edit_duplicate_and_remove(ctx: Context, actors: dict[Role, Actor], setup: str) -> None:
    admin = actors[Role.ADMIN]
    exports.add_export(ctx, admin, spec(setup))
    updated = exports.update_export(
        ctx, admin, "loyal", spec(setup, segments=("everyone", "gb"), mode="add-only")
    )
    assert updated.segments == ("everyone", "gb")
    assert updated.mode == "add-only"
    copy = exports.duplicate_export(ctx, admin, "loyal", "loyal copy")
    assert copy.enabled is False
    assert copy.segments == updated.segments
    assert copy.audience_id != setup  # one export per audience: the copy has its own
    assert copy.audience_name == "Loyal customers (loyal copy)"
    with pytest.raises(ConflictError, match="already exists"):
        exports.add_export(ctx, admin, spec(setup))
    exports.remove_export(ctx, admin, "loyal copy")
    assert [v.name for v in exports.list_exports(ctx, admin)] == ["loyal"]


def test_removing_a_used_segment_is_refused(
    ctx: Context, actors: dict[Role, Actor], setup: str
) -> None:
    exports.add_export(ctx, actors[Role.ADMIN], spec(setup, segments=("gb",)))
    with pytest.raises(ConflictError, match="loyal"):
        segments.remove_segment(ctx, actors[Role.ADMIN], "gb")


def test_sharing_changes_keep_exports_and_detach_deactivates(
    ctx: Context, actors: dict[Role, Actor], setup: str
) -> None:
    admin = actors[Role.ADMIN]
    exports.add_export(ctx, actors[Role.CONTRIBUTOR], spec(setup))
    connections.set_access(ctx, admin, "Shared", share_with_contributors=False)
    assert exports.get_export(ctx, admin, "loyal").state == "enabled"

    with pytest.raises(ConflictError, match="used by export"):
        connections.remove_connection(ctx, admin, "Shared")
    assert connections.remove_connection(ctx, admin, "Shared", detach=True) == ["loyal"]
    detached = exports.get_export(ctx, admin, "loyal")
    assert detached.connection is None
    assert detached.state.startswith("detached")
    assert detached.email_field == "email"  # configuration kept
    with pytest.raises(ConflictError, match="detached"):
        exports.set_enabled(ctx, admin, "loyal", enabled=True)
    reattached = exports.update_export(ctx, admin, "loyal", spec(setup, connection="Admins only"))
    assert reattached.connection == "Admins only"
