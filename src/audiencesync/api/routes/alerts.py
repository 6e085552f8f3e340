"""``/alerts``: alert channels (administrators only), the events, recent deliveries.

An export's choice of channels and events is part of the export
(``alert_channels``, ``alert_events``, ``alert_reject_share`` on ``/exports``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from audiencesync.api.deps import Ctx, CurrentActor
from audiencesync.api.models import AlertChannelCreate, AlertChannelPublic, AlertDeliveryPublic
from audiencesync.sync import alerts

router = APIRouter(prefix="/alerts", tags=["alerts"])


@router.get("/events")
def events(actor: CurrentActor) -> list[str]:
    """The events an export can be alerted about (any signed-in user)."""
    del actor  # signed in is all it takes
    return [event.value for event in alerts.ALL_EVENTS]


@router.get("/channels")
def list_channels(ctx: Ctx, actor: CurrentActor) -> list[AlertChannelPublic]:
    """Every channel, shown as scheme and host, with the exports using it."""
    return [AlertChannelPublic.of(v) for v in alerts.list_channels(ctx, actor)]


@router.post("/channels", status_code=status.HTTP_201_CREATED)
def add_channel(ctx: Ctx, actor: CurrentActor, body: AlertChannelCreate) -> AlertChannelPublic:
    """Add a channel; its URL is checked, stored encrypted and never returned."""
    return AlertChannelPublic.of(alerts.add_channel(ctx, actor, body.name, body.url))


@router.delete("/channels/{name}", status_code=status.HTTP_204_NO_CONTENT)
def remove_channel(ctx: Ctx, actor: CurrentActor, name: str) -> None:
    """Remove a channel; exports stop alerting it; its past deliveries are kept."""
    alerts.remove_channel(ctx, actor, name)


@router.post("/channels/{name}/test")
def test_channel(ctx: Ctx, actor: CurrentActor, name: str) -> AlertDeliveryPublic:
    """Send a test alert now (with retries); the delivery says whether it arrived."""
    return AlertDeliveryPublic.of(alerts.test_channel(ctx, actor, name))


@router.get("/deliveries")
def list_deliveries(
    ctx: Ctx,
    actor: CurrentActor,
    channel: str | None = None,
    export: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[AlertDeliveryPublic]:
    """Recent deliveries, newest first: event, channel, status, attempts, error."""
    views = alerts.list_deliveries(ctx, actor, channel=channel, export=export, limit=limit)
    return [AlertDeliveryPublic.of(v) for v in views]
