"""``/sources``: the databases linked datasets read from (administrators add and remove)."""

from __future__ import annotations

from fastapi import APIRouter, status

from audiencesync.api.deps import Ctx, CurrentActor
from audiencesync.api.models import SourceCreate, SourcePublic
from audiencesync.profiles import sources

router = APIRouter(prefix="/sources", tags=["profiles"])


@router.get("")
def list_sources(ctx: Ctx, actor: CurrentActor) -> list[SourcePublic]:
    return [SourcePublic.of(v) for v in sources.list_sources(ctx, actor)]


@router.post("", status_code=status.HTTP_201_CREATED)
def add_source(ctx: Ctx, actor: CurrentActor, body: SourceCreate) -> SourcePublic:
    """Add a source (administrators): its URL is checked, connected to, stored encrypted."""
    return SourcePublic.of(sources.add_source(ctx, actor, body.name, url=body.url))


@router.get("/{name}")
def get_source(ctx: Ctx, actor: CurrentActor, name: str) -> SourcePublic:
    return SourcePublic.of(sources.get_source(ctx, actor, name))


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def remove_source(ctx: Ctx, actor: CurrentActor, name: str) -> None:
    sources.remove_source(ctx, actor, name)
