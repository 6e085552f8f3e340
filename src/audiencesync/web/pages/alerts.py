"""Admin > Alerts: channels (email, webhooks) and the recent deliveries with their status."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from audiencesync.errors import AudiencesyncError
from audiencesync.sync import alerts
from audiencesync.web.common import CurrentPage, Form, FormError, Page, redirect, render

router = APIRouter()


def _alerts(
    request: Request, page: Page, *, error: FormError = None, status: int = 200,
    values: dict[str, str] | None = None,
) -> Response:  # fmt: skip
    return render(
        request, page, "alerts.html", channels=alerts.list_channels(page.ctx, page.actor),
        deliveries=alerts.list_deliveries(page.ctx, page.actor, limit=50),
        events=[(e.value, alerts.EVENT_WORDS[e]) for e in alerts.ALL_EVENTS],
        error=error, values=values or {}, status=status, nav="alerts",
    )  # fmt: skip


@router.get("/alerts")
def show_alerts(request: Request, page: CurrentPage) -> Response:
    return _alerts(request, page)


@router.post("/alerts")
def add_channel(request: Request, page: Form) -> Response:
    try:
        view = alerts.add_channel(page.ctx, page.actor, page.text("name"), page.text("url"))
    except AudiencesyncError as error:
        # The URL holds the channel's secrets: it is never written back into the page.
        values = {"name": page.text("name")}
        return _alerts(request, page, error=error, status=error.http_status, values=values)
    page.flash(f"Alert channel {view.name} ({view.display}) was added.")
    return redirect("/alerts")


@router.post("/alerts/{name}/test")
def test_channel(request: Request, page: Form, name: str) -> Response:
    try:
        delivery = alerts.test_channel(page.ctx, page.actor, name)
    except AudiencesyncError as error:
        return _alerts(request, page, error=error, status=error.http_status)
    if delivery.status == alerts.DELIVERED:
        page.flash(f"A test alert was delivered to {name}.")
    else:
        page.flash(
            f"The test alert to {name} failed after {delivery.attempts} attempt(s): "
            f"{delivery.error}",
            kind="error",
        )
    return redirect("/alerts")


@router.post("/alerts/{name}/remove")
def remove_channel(request: Request, page: Form, name: str) -> Response:
    try:
        alerts.remove_channel(page.ctx, page.actor, name)
    except AudiencesyncError as error:
        return _alerts(request, page, error=error, status=error.http_status)
    page.flash(f"Alert channel {name} was removed.")
    return redirect("/alerts")
