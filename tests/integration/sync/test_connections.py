"""The Snapchat connection: consent, OAuth through the emulator, access, secrets at rest."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from audiencesync.control import audit
from audiencesync.control.context import Context
from audiencesync.control.models import Role
from audiencesync.control.permissions import Actor
from audiencesync.control.sync_models import Connection
from audiencesync.emulator.testing import EmulatorHandle
from audiencesync.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ReauthenticationRequiredError,
    UserInputError,
)
from audiencesync.sync import connections
from audiencesync.sync.consent import CONSENT_VERSION
from audiencesync.sync.destinations import REFUSED_REFRESH_WAITS, load_tokens, open_destination
from tests.snap_helpers import connect, sign_in


def test_the_seed_flow_records_consent_account_and_export_user(
    ctx: Context, actors: dict[Role, Actor], emulator: EmulatorHandle
) -> None:
    admin = actors[Role.ADMIN]
    view = connect(ctx, admin, "Snapchat marketing")
    assert view.full
    assert view.consent_by == "admin"
    assert view.consent_version == CONSENT_VERSION
    assert view.export_user == "admin"
    assert view.shared_with_contributors is False  # administrators only by default
    assert emulator.ad_account_id in {a.id for a in view.ad_accounts}
    assert emulator.other_ad_account_id not in {a.id for a in view.ad_accounts}
    assert view.organization_ids == (emulator.organization_id,)
    entry = audit.list_entries(ctx, admin, target="connection:Snapchat marketing")[0]
    assert entry.action == "connection.create"
    assert "token" not in str(entry.after)


def test_no_consent_no_connection(ctx: Context, actors: dict[Role, Actor]) -> None:
    admin = actors[Role.ADMIN]
    authorization, code, state = sign_in(ctx, admin)
    tokens = connections.finish_authorization(ctx, admin, authorization, code=code, state=state)
    with pytest.raises(UserInputError, match="needs your agreement to the data privacy"):
        connections.create_snapchat_connection(
            ctx, admin, "x", share_with_contributors=False, agreed=False, tokens=tokens
        )
    assert connections.list_connections(ctx, admin) == []


def test_a_forged_state_is_refused(ctx: Context, actors: dict[Role, Actor]) -> None:
    admin = actors[Role.ADMIN]
    authorization, code, _ = sign_in(ctx, admin)
    with pytest.raises(PermissionDeniedError, match="different state"):
        connections.finish_authorization(ctx, admin, authorization, code=code, state="forged")


def test_tokens_are_encrypted_at_rest(ctx: Context, actors: dict[Role, Actor]) -> None:
    view = connect(ctx, actors[Role.ADMIN])
    with ctx.db.session() as session:
        row = session.query(Connection).filter_by(name=view.name).one()
        tokens = load_tokens(ctx, row.id)
        dump = " ".join(
            str(r) for t in ("secrets", "connections", "audit_log")
            for r in session.execute(text(f"SELECT * FROM {t}"))
        )  # fmt: skip
    assert tokens.access_token not in dump
    assert tokens.refresh_token not in dump
    if ctx.db.url.startswith("sqlite") or ctx.settings.database_url is None:
        raw = (ctx.home / "control.db").read_bytes()
        assert tokens.refresh_token.encode() not in raw
        assert tokens.access_token.encode() not in raw


CONNECTION_ACTIONS = ["create", "reauth", "set_access", "remove"]


@pytest.mark.parametrize("role", [Role.CONTRIBUTOR, Role.VIEWER])
def test_only_admins_manage_connections(
    ctx: Context, actors: dict[Role, Actor], role: Role
) -> None:
    admin, who = actors[Role.ADMIN], actors[role]
    connect(ctx, admin, "Snap", share=True)
    denied = "cannot create, change or remove connections"
    with pytest.raises(PermissionDeniedError, match=denied):
        connections.start_authorization(ctx, who)
    with pytest.raises(PermissionDeniedError, match=denied):
        connections.set_access(ctx, who, "Snap", share_with_contributors=False)
    with pytest.raises(PermissionDeniedError, match=denied):
        connections.remove_connection(ctx, who, "Snap")
    tokens = load_tokens(ctx, 1)
    with pytest.raises(PermissionDeniedError, match=denied):
        connections.reauthenticate(ctx, who, "Snap", tokens)
    with pytest.raises(PermissionDeniedError, match=denied):
        connections.create_snapchat_connection(
            ctx, who, "mine", share_with_contributors=True, agreed=True, tokens=tokens
        )


def test_who_sees_what_of_a_connection(ctx: Context, actors: dict[Role, Actor]) -> None:
    admin = actors[Role.ADMIN]
    connect(ctx, admin, "Shared", share=True)
    connect(ctx, admin, "Admins only")
    full = {v.name: v for v in connections.list_connections(ctx, admin)}
    assert set(full) == {"Shared", "Admins only"}
    assert all(v.full and v.ad_accounts for v in full.values())

    contributor = connections.list_connections(ctx, actors[Role.CONTRIBUTOR])
    assert [(v.name, v.type, v.full) for v in contributor] == [("Shared", "snapchat", False)]
    assert contributor[0].ad_accounts == ()
    assert contributor[0].consent_by is None
    with pytest.raises(NotFoundError):
        connections.get_connection(ctx, actors[Role.CONTRIBUTOR], "Admins only")

    viewer = connections.list_connections(ctx, actors[Role.VIEWER])
    assert sorted((v.name, v.full) for v in viewer) == [("Admins only", False), ("Shared", False)]


def test_reauth_replaces_tokens_and_clears_the_mark(
    ctx: Context, actors: dict[Role, Actor], emulator: EmulatorHandle
) -> None:
    admin = actors[Role.ADMIN]
    connect(ctx, admin, "Snap")
    emulator.revoke_tokens()
    emulator.expire_tokens()
    with ctx.db.session() as session:
        row = session.query(Connection).filter_by(name="Snap").one()
    slept: list[float] = []
    destination = open_destination(ctx, row, sleep=slept.append)
    with pytest.raises(ReauthenticationRequiredError, match="re-authenticate connection"):
        destination.check_connection()
    destination.close()
    assert connections.get_connection(ctx, admin, "Snap").status == "needs_reauth"
    assert slept == list(REFUSED_REFRESH_WAITS)  # no newer tokens stored meanwhile

    authorization, code, state = sign_in(ctx, admin)
    tokens = connections.finish_authorization(ctx, admin, authorization, code=code, state=state)
    view = connections.reauthenticate(ctx, admin, "Snap", tokens)
    assert view.status == "active"


def test_names_are_unique_and_access_changes_are_audited(
    ctx: Context, actors: dict[Role, Actor]
) -> None:
    admin = actors[Role.ADMIN]
    connect(ctx, admin, "Snap")
    with pytest.raises(ConflictError, match="already exists"):
        connect(ctx, admin, "Snap")
    connections.set_access(ctx, admin, "Snap", share_with_contributors=True)
    entry = audit.list_entries(ctx, admin, target="connection:Snap")[0]
    assert entry.before == {"shared_with_contributors": False}
    assert entry.after == {"shared_with_contributors": True}
