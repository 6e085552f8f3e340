"""``/audit``: who changed what, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from audiencesync.api.deps import Ctx, CurrentActor
from audiencesync.api.models import AuditPublic
from audiencesync.control import audit

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("")
def list_entries(
    ctx: Ctx,
    actor: CurrentActor,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    target: str | None = None,
) -> list[AuditPublic]:
    """The newest entries; ``target`` filters on one thing, e.g. ``export:weekly``."""
    return [AuditPublic.of(e) for e in audit.list_entries(ctx, actor, limit=limit, target=target)]
