"""Users, roles, passwords and the audit log, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from audiencesync.control import audit, users
from audiencesync.control.context import Context
from audiencesync.control.models import Role, User
from audiencesync.control.permissions import Actor
from audiencesync.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    UserInputError,
)
from tests.conftest import PASSWORD


def test_first_admin_is_created_once(ctx: Context) -> None:
    with pytest.raises(ConflictError, match="already has users"):
        users.create_first_admin(ctx, "second", PASSWORD)
    assert [u.name for u in users.list_users(ctx, users.resolve_actor(ctx, None))] == ["admin"]


def test_passwords_are_stored_as_argon2_hashes(ctx: Context) -> None:
    with ctx.db.session() as session:
        stored = session.scalar(select(User.password_hash).where(User.name == "admin"))
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_authenticate_accepts_the_right_password_only(ctx: Context) -> None:
    assert users.authenticate(ctx, "admin", PASSWORD).role is Role.ADMIN
    with pytest.raises(PermissionDeniedError, match="wrong user name or password"):
        users.authenticate(ctx, "admin", "not the password")
    with pytest.raises(PermissionDeniedError, match="wrong user name or password"):
        users.authenticate(ctx, "nobody", PASSWORD)


def test_admin_manages_users_and_every_change_is_audited(
    ctx: Context, actors: dict[Role, Actor]
) -> None:
    admin = actors[Role.ADMIN]
    listed = {u.name: u.role for u in users.list_users(ctx, admin)}
    assert listed == {"admin": Role.ADMIN, "carol": Role.CONTRIBUTOR, "victor": Role.VIEWER}

    users.set_role(ctx, admin, "victor", Role.CONTRIBUTOR)
    users.remove_user(ctx, admin, "carol")
    assert {u.name for u in users.list_users(ctx, admin)} == {"admin", "victor"}

    entries = audit.list_entries(ctx, admin)
    actions = [(e.actor, e.action, e.target) for e in entries]
    assert ("admin", "user.remove", "user:carol") in actions
    assert ("admin", "user.set_role", "user:victor") in actions
    role_change = next(e for e in entries if e.action == "user.set_role")
    assert role_change.before == {"role": "viewer"}
    assert role_change.after == {"role": "contributor"}
    # Secrets never reach the audit log.
    for entry in entries:
        assert "password" not in str(entry.before) + str(entry.after)


@pytest.mark.parametrize("role", [Role.CONTRIBUTOR, Role.VIEWER])
def test_only_admins_manage_users(ctx: Context, actors: dict[Role, Actor], role: Role) -> None:
    who = actors[role]
    with pytest.raises(PermissionDeniedError, match=f"is a {role.value} and cannot manage users"):
        users.add_user(ctx, who, "mallory", Role.ADMIN, PASSWORD)
    with pytest.raises(PermissionDeniedError):
        users.set_role(ctx, who, who.name, Role.ADMIN)
    with pytest.raises(PermissionDeniedError):
        users.remove_user(ctx, who, "admin")
    # ...but everyone may read the user list.
    assert len(users.list_users(ctx, who)) == 3


def test_the_last_admin_cannot_be_demoted_or_removed(
    ctx: Context, actors: dict[Role, Actor]
) -> None:
    admin = actors[Role.ADMIN]
    with pytest.raises(ConflictError, match="last administrator"):
        users.set_role(ctx, admin, "admin", Role.VIEWER)
    users.add_user(ctx, admin, "ada", Role.ADMIN, PASSWORD)
    ada = users.resolve_actor(ctx, "ada")
    with pytest.raises(ConflictError, match="cannot remove yourself"):
        users.remove_user(ctx, ada, "ada")
    users.remove_user(ctx, ada, "admin")
    with pytest.raises(ConflictError, match="last administrator"):
        users.set_role(ctx, ada, "ada", Role.CONTRIBUTOR)


def test_bad_names_roles_and_passwords_get_one_sentence(
    ctx: Context, actors: dict[Role, Actor]
) -> None:
    admin = actors[Role.ADMIN]
    with pytest.raises(UserInputError, match="not a valid user name"):
        users.add_user(ctx, admin, "bad name!", Role.VIEWER, PASSWORD)
    with pytest.raises(UserInputError, match="too short"):
        users.add_user(ctx, admin, "dave", Role.VIEWER, "short")
    with pytest.raises(UserInputError, match="unknown role 'owner': use one of admin"):
        users.parse_role("owner")
    with pytest.raises(ConflictError, match="already exists"):
        users.add_user(ctx, admin, "carol", Role.VIEWER, PASSWORD)
    with pytest.raises(NotFoundError, match="no user named 'zed'"):
        users.set_role(ctx, admin, "zed", Role.VIEWER)


def test_users_change_their_own_password(ctx: Context, actors: dict[Role, Actor]) -> None:
    victor = actors[Role.VIEWER]
    users.set_password(ctx, victor, "victor", "a new long password")
    assert users.authenticate(ctx, "victor", "a new long password").name == "victor"
    with pytest.raises(PermissionDeniedError):
        users.set_password(ctx, victor, "admin", "taking over admin")


def test_each_user_chooses_the_time_zone_their_pages_show(
    ctx: Context, actors: dict[Role, Actor]
) -> None:
    victor = actors[Role.VIEWER]
    assert users.resolve_actor(ctx, "victor").time_zone is None  # until chosen: UTC
    view = users.set_time_zone(ctx, victor, "victor", "europe/paris")
    assert view.time_zone == "Europe/Paris"  # spelled as the tz database does
    assert users.resolve_actor(ctx, "victor").time_zone == "Europe/Paris"
    assert users.authenticate(ctx, "victor", PASSWORD).time_zone == "Europe/Paris"
    listed = {u.name: u.time_zone for u in users.list_users(ctx, victor)}
    assert listed == {"admin": None, "carol": None, "victor": "Europe/Paris"}
    entry = audit.list_entries(ctx, actors[Role.ADMIN], target="user:victor")[0]
    assert (entry.actor, entry.action) == ("victor", "user.set_time_zone")
    assert entry.after == {"time_zone": "Europe/Paris"}
    # An administrator sets anyone's; an empty zone goes back to UTC.
    assert users.set_time_zone(ctx, actors[Role.ADMIN], "victor", " ").time_zone is None
    assert users.resolve_actor(ctx, "victor").time_zone is None
    with pytest.raises(PermissionDeniedError):
        users.set_time_zone(ctx, victor, "carol", "Asia/Tokyo")
    assert users.resolve_actor(ctx, "carol").time_zone is None


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "CEST", "../../etc/passwd", "x" * 500])
def test_an_unknown_time_zone_is_one_sentence_naming_the_field(
    ctx: Context, actors: dict[Role, Actor], zone: str
) -> None:
    carol = actors[Role.CONTRIBUTOR]
    users.set_time_zone(ctx, carol, "carol", "Asia/Tokyo")
    with pytest.raises(UserInputError) as caught:
        users.set_time_zone(ctx, carol, "carol", zone)
    error = caught.value
    assert error.field == "time_zone"
    assert ". " not in str(error)
    assert str(error).endswith(".")
    assert "is not a time zone: give time_zone an IANA name such as Europe/Paris" in str(error)
    assert users.resolve_actor(ctx, "carol").time_zone == "Asia/Tokyo"  # unchanged
