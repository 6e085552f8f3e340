"""``/users``: list (everyone), add, change role or password, remove (administrators)."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from audiencesync.api import auth
from audiencesync.api.deps import Ctx, CurrentActor, CurrentPrincipal, client_address
from audiencesync.api.models import UserCreate, UserPublic, UserUpdate
from audiencesync.control import users
from audiencesync.errors import NotFoundError, UserInputError

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
def update_user(
    ctx: Ctx, principal: CurrentPrincipal, request: Request, name: str, body: UserUpdate
) -> UserPublic:
    """Change a role (administrators) or a password (your own, or anyone's as administrator).

    Your own password needs ``current_password``; your other sessions and API tokens are
    then revoked (not the one this request came with). An administrator's reset of
    another user's password revokes all of that user's sessions and tokens.
    """
    actor = principal.actor
    if body.password is not None:
        if name == actor.name:
            if not body.current_password:
                raise UserInputError(
                    "give your current password as 'current_password' to change your own password."
                )
            auth.check_current_password(
                ctx, actor, body.current_password, address=client_address(request)
            )
            keep = principal.session.id_hash if principal.session is not None else None
            users.set_password(
                ctx, actor, name, body.password, keep_session=keep, keep_token=principal.token_hash
            )
        else:
            users.set_password(ctx, actor, name, body.password)
    if body.role is not None:
        return UserPublic.of(users.set_role(ctx, actor, name, body.role))
    return _find(ctx, actor, name)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def remove_user(ctx: Ctx, actor: CurrentActor, name: str) -> None:
    users.remove_user(ctx, actor, name)
