"""``/me``: who you are, your time zone, and your personal API tokens."""

from __future__ import annotations

from fastapi import APIRouter, status

from audiencesync.api import auth
from audiencesync.api.deps import Ctx, CurrentActor, CurrentPrincipal, RecordId
from audiencesync.api.models import Me, MeUpdate, TokenCreate, TokenCreated, TokenPublic
from audiencesync.control import users

router = APIRouter(prefix="/me", tags=["me"])


@router.get("")
def whoami(principal: CurrentPrincipal) -> Me:
    """The calling user, their role, and how they signed in."""
    actor = principal.actor
    return Me(
        name=actor.name, role=actor.role, authenticated_by=principal.via,
        time_zone=actor.time_zone,
    )  # fmt: skip


@router.patch("")
def update_me(ctx: Ctx, principal: CurrentPrincipal, body: MeUpdate) -> Me:
    """Set the time zone web pages show you times in (``time_zone``: an IANA name such as
    Europe/Paris; null or empty for UTC). The API itself always answers in UTC."""
    actor = principal.actor
    zone = actor.time_zone
    if "time_zone" in body.model_fields_set:
        zone = users.set_time_zone(ctx, actor, actor.name, body.time_zone).time_zone
    return Me(name=actor.name, role=actor.role, authenticated_by=principal.via, time_zone=zone)


@router.get("/tokens")
def list_tokens(ctx: Ctx, actor: CurrentActor) -> list[TokenPublic]:
    """Your API tokens (never the tokens themselves)."""
    return [TokenPublic.of(t) for t in auth.list_tokens(ctx, actor)]


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
def create_token(ctx: Ctx, actor: CurrentActor, body: TokenCreate) -> TokenCreated:
    """A new API token for you: the response shows it once; only its hash is stored."""
    created = auth.create_token(ctx, actor, body.name, expires_in_days=body.expires_in_days)
    public = TokenPublic.of(created.view)
    return TokenCreated(**public.model_dump(), token=created.token)


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(ctx: Ctx, actor: CurrentActor, token_id: RecordId) -> None:
    """Revoke one of your tokens; it stops working at once."""
    auth.revoke_token(ctx, actor, token_id)
