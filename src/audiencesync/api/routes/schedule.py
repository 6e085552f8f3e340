"""``/schedule``: the system refresh schedule (read: everyone; change: administrators)."""

from __future__ import annotations

from fastapi import APIRouter

from audiencesync.api.deps import Ctx, CurrentActor
from audiencesync.api.models import SchedulePublic, ScheduleUpdate
from audiencesync.sync import schedule

router = APIRouter(prefix="/schedule", tags=["schedule"])


@router.get("")
def get_schedule(ctx: Ctx, actor: CurrentActor) -> SchedulePublic:
    return SchedulePublic.of(schedule.get_schedule(ctx, actor))


@router.put("")
def set_schedule(ctx: Ctx, actor: CurrentActor, body: ScheduleUpdate) -> SchedulePublic:
    view = schedule.set_schedule(
        ctx, actor, enabled=body.enabled, cron=body.cron, timezone=body.timezone
    )
    return SchedulePublic.of(view)
