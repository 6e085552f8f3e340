"""``/users``: list (everyone), add, change role or password, remove (administrators)."""

from __future__ import annotations

from fastapi import APIRouter, status

from audiencesync.api import auth
from audiencesync.api.deps import Ctx, CurrentActor
from audiencesync.api.models import UserCreate, UserPublic, UserUpdate
from audiencesync.control import users
from audiencesync.errors import NotFoundError

router = APIRouter(prefix="/users", tags=["users"])


def _find(ctx: Ctx, actor: CurrentActor, name: str) -> UserPublic:
    for view in users.list_users(ctx, actor):
        if view.name == name:
            return UserPublic.of(view)
    raise NotFoundError(f"there is no user named {name!r}.")


@router.get("")
def list_users(ctx: Ctx, actor: CurrentActor) -> list[UserPublic]:
    return [UserPublic.of(v) for v in users.list_users(ctx, actor)]


@router.get("/{name}")
def get_user(ctx: Ctx, actor: CurrentActor, name: str) -> UserPublic:
    return _find(ctx, actor, name)


@router.post("", status_code=status.HTTP_201_CREATED)
def add_user(ctx: Ctx, actor: CurrentActor, body: UserCreate) -> UserPublic:
    """Add a user. Administrators only."""
    return UserPublic.of(users.add_user(ctx, actor, body.name, body.role, body.password))


@router.patch("/{name}")
def update_user(ctx: Ctx, actor: CurrentActor, name: str, body: UserUpdate) -> UserPublic:
    """Change a role (administrators) or a password (your own, or anyone's as administrator)."""
    if body.password is not None:
        users.set_password(ctx, actor, name, body.password)
        if name != actor.name:
            auth.end_sessions_of(ctx, name)
    if body.role is not None:
        return UserPublic.of(users.set_role(ctx, actor, name, body.role))
    return _find(ctx, actor, name)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def remove_user(ctx: Ctx, actor: CurrentActor, name: str) -> None:
    users.remove_user(ctx, actor, name)
