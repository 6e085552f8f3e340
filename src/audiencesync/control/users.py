"""Users: the first administrator, adding, listing, changing roles and time zones,
removing, signing in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from audiencesync.control import audit
from audiencesync.control.context import Context
from audiencesync.control.models import Role, User
from audiencesync.control.permissions import Action, Actor, require
from audiencesync.control.web_models import ApiToken, WebSession
from audiencesync.control.zones import canonical_zone
from audiencesync.errors import (
    ConflictError,
    Fix,
    NotFoundError,
    NotSetUpError,
    PermissionDeniedError,
    UserInputError,
)

MIN_PASSWORD_LENGTH = 8
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
_hasher = PasswordHasher()


@dataclass(frozen=True)
class UserView:
    name: str
    role: Role
    created_at: datetime
    #: the IANA zone web pages show the user times in; None: UTC.
    time_zone: str | None = None


def _view(user: User) -> UserView:
    return UserView(user.name, Role(user.role), user.created_at, user.time_zone)


def actor_of(user: User) -> Actor:
    """The Actor a user row acts as (with the zone their pages show times in)."""
    return Actor(user.id, user.name, Role(user.role), user.time_zone)


def parse_role(value: str) -> Role:
    """The Role named by ``value``, or a UserInputError listing the roles."""
    try:
        return Role(value.strip().lower())
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise UserInputError(f"unknown role {value!r}: use one of {roles}.", field="role") from None


def parse_time_zone(value: str | None) -> str | None:
    """The IANA zone ``value`` names, spelled as the tz database does; None for an empty
    value (times in UTC); a UserInputError on field ``time_zone`` for anything else."""
    if value is None or not value.strip():
        return None
    zone = canonical_zone(value)
    if zone is None:
        shown = value.strip()[:100]
        raise UserInputError(
            f"{shown!r} is not a time zone: give time_zone an IANA name such as "
            "Europe/Paris, America/New_York or UTC, or leave it empty for UTC.",
            field="time_zone",
        )
    return zone


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise UserInputError(
            f"{name!r} is not a valid user name: use letters, digits, '.', '_', '-' or '@', "
            "starting with a letter or digit, at most 100 characters.",
            field="name",
        )


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserInputError(
            f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters.",
            field="password",
        )


def _get(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFoundError(f"there is no user named {name!r}.", fix=Fix("list", "users"))
    return user


def _admin_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User).where(User.role == "admin")) or 0


def has_users(ctx: Context) -> bool:
    with ctx.db.session() as session:
        return (session.scalar(select(func.count()).select_from(User)) or 0) > 0


def create_first_admin(ctx: Context, name: str, password: str) -> UserView:
    """Create the first administrator; refused once any user exists."""
    _check_name(name)
    _check_password(password)
    with ctx.db.session() as session:
        if session.scalar(select(func.count()).select_from(User)):
            raise ConflictError("this home already has users", fix=Fix("add_users"))
        user = User(name=name, role=Role.ADMIN.value, password_hash=_hasher.hash(password))
        session.add(user)
        audit.record(session, name, "user.create", f"user:{name}", after={"role": "admin"})
        session.flush()
        return _view(user)


def add_user(ctx: Context, actor: Actor, name: str, role: Role, password: str) -> UserView:
    """Add a user with ``role``. Administrators only."""
    require(actor, Action.MANAGE_USERS)
    _check_name(name)
    _check_password(password)
    with ctx.db.session() as session:
        if session.scalar(select(User).where(User.name == name)) is not None:
            raise ConflictError(
                f"a user named {name!r} already exists: choose another name.", field="name"
            )
        user = User(name=name, role=role.value, password_hash=_hasher.hash(password))
        session.add(user)
        audit.record(session, actor, "user.create", f"user:{name}", after={"role": role.value})
        session.flush()
        return _view(user)


def list_users(ctx: Context, actor: Actor) -> list[UserView]:
    """Every user, by name."""
    require(actor, Action.READ)
    with ctx.db.session() as session:
        return [_view(u) for u in session.scalars(select(User).order_by(User.name))]


def set_role(ctx: Context, actor: Actor, name: str, role: Role) -> UserView:
    """Change a user's role; the last administrator cannot be demoted."""
    require(actor, Action.MANAGE_USERS)
    with ctx.db.session() as session:
        user = _get(session, name)
        before = user.role
        if before == Role.ADMIN.value and role is not Role.ADMIN and _admin_count(session) == 1:
            raise ConflictError(
                f"{name} is the last administrator: make another user an administrator first.",
                field="role",
            )
        user.role = role.value
        audit.record(
            session, actor, "user.set_role", f"user:{name}",
            before={"role": before}, after={"role": role.value},
        )  # fmt: skip
        return _view(user)


def set_time_zone(ctx: Context, actor: Actor, name: str, time_zone: str | None) -> UserView:
    """Set the zone web pages show ``name`` times in: your own, or anyone's as an
    administrator. ``time_zone`` is an IANA name ("Europe/Paris", any case); empty or None
    goes back to UTC. A UserInputError (field ``time_zone``) names an unknown zone."""
    if name != actor.name:
        require(actor, Action.MANAGE_USERS)
    zone = parse_time_zone(time_zone)
    with ctx.db.session() as session:
        user = _get(session, name)
        before = user.time_zone
        if before != zone:
            user.time_zone = zone
            audit.record(
                session, actor, "user.set_time_zone", f"user:{name}",
                before={"time_zone": before}, after={"time_zone": zone},
            )  # fmt: skip
        return _view(user)


def remove_user(ctx: Context, actor: Actor, name: str) -> None:
    """Remove a user; the last administrator and the acting user cannot be removed."""
    require(actor, Action.MANAGE_USERS)
    if name == actor.name:
        raise ConflictError("you cannot remove yourself: ask another administrator.")
    with ctx.db.session() as session:
        user = _get(session, name)
        if user.role == Role.ADMIN.value and _admin_count(session) == 1:
            raise ConflictError(f"{name} is the last administrator and cannot be removed.")
        session.delete(user)
        audit.record(session, actor, "user.remove", f"user:{name}", before={"role": user.role})


def resolve_actor(ctx: Context, name: str | None) -> Actor:
    """The user named ``name``, or the first administrator when ``name`` is None."""
    with ctx.db.session() as session:
        if name is None:
            user = session.scalar(select(User).where(User.role == "admin").order_by(User.id))
            if user is None:
                raise NotSetUpError("there is no administrator", fix=Fix("init"))
            return actor_of(user)
        return actor_of(_get(session, name))


def authenticate(ctx: Context, name: str, password: str) -> Actor:
    """The user with this name and password; one vague error for either being wrong."""
    wrong = PermissionDeniedError("wrong user name or password.")
    with ctx.db.session() as session:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            # Spend the same time as a real check so names cannot be probed by timing.
            _hasher.hash(password)
            raise wrong
        try:
            _hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            raise wrong from None
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = _hasher.hash(password)
        return actor_of(user)


def set_password(
    ctx: Context,
    actor: Actor,
    name: str,
    password: str,
    *,
    keep_session: str | None = None,
    keep_token: str | None = None,
) -> None:
    """Change a password: your own, or anyone's as an administrator.

    In the same transaction the user's web sessions end and their API tokens are revoked,
    except ``keep_session`` / ``keep_token`` (the SHA-256 of the session or token a user
    changed their own password with, so they stay signed in there).
    """
    if name != actor.name:
        require(actor, Action.MANAGE_USERS)
    _check_password(password)
    with ctx.db.session() as session:
        user = _get(session, name)
        user.password_hash = _hasher.hash(password)
        sessions = delete(WebSession).where(WebSession.user_id == user.id)
        if keep_session is not None:
            sessions = sessions.where(WebSession.id_hash != keep_session)
        tokens = delete(ApiToken).where(ApiToken.user_id == user.id)
        if keep_token is not None:
            tokens = tokens.where(ApiToken.token_hash != keep_token)
        session.execute(sessions)
        session.execute(tokens)
        audit.record(session, actor, "user.set_password", f"user:{name}")
