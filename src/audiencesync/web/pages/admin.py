"""Admin > Users, Settings > Schedule, and the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from audiencesync.control import audit, users
from audiencesync.control.models import Role
from audiencesync.errors import AudiencesyncError, UserInputError
from audiencesync.sync import schedule
from audiencesync.web.common import CurrentPage, Form, Page, redirect, render

router = APIRouter()
COMMON_ZONES = ("UTC", "Europe/London", "Europe/Paris", "America/New_York", "America/Los_Angeles",
                "Asia/Tokyo", "Australia/Sydney")  # fmt: skip


def _users(
    request: Request, page: Page, *, error: str | None = None, status: int = 200,
    values: dict[str, str] | None = None,
) -> Response:  # fmt: skip
    return render(
        request, page, "users.html", users=users.list_users(page.ctx, page.actor),
        roles=[r.value for r in Role], error=error, values=values or {},
        status=status, nav="users",
    )  # fmt: skip


@router.get("/users")
def list_users(request: Request, page: CurrentPage) -> Response:
    return _users(request, page)


@router.post("/users")
def add_user(request: Request, page: Form) -> Response:
    try:
        role = users.parse_role(page.text("role"))
        users.add_user(page.ctx, page.actor, page.text("name"), role, page.text("password"))
    except AudiencesyncError as error:
        values = {k: v for k, v in page.values().items() if k != "password"}
        return _users(request, page, error=error.message, status=error.http_status, values=values)
    page.flash(f"User {page.text('name')} was added as {page.text('role')}.")
    return redirect("/users")


@router.post("/users/{name}/role")
def set_role(request: Request, page: Form, name: str) -> Response:
    try:
        users.set_role(page.ctx, page.actor, name, users.parse_role(page.text("role")))
    except AudiencesyncError as error:
        return _users(request, page, error=error.message, status=error.http_status)
    page.flash(f"{name} is now {page.text('role')}.")
    return redirect("/users")


@router.post("/users/{name}/password")
def set_password(request: Request, page: Form, name: str) -> Response:
    """Reset another user's password: their sessions end and their API tokens are revoked."""
    try:
        if name == page.actor.name:
            raise UserInputError(
                "change your own password on your account page: it asks for your current one."
            )
        users.set_password(page.ctx, page.actor, name, page.text("password"))
    except AudiencesyncError as error:
        return _users(request, page, error=error.message, status=error.http_status)
    page.flash(
        f"The password of {name} was changed; their sessions were signed out and their API "
        "tokens revoked."
    )
    return redirect("/users")


@router.post("/users/{name}/remove")
def remove_user(request: Request, page: Form, name: str) -> Response:
    try:
        users.remove_user(page.ctx, page.actor, name)
    except AudiencesyncError as error:
        return _users(request, page, error=error.message, status=error.http_status)
    page.flash(f"User {name} was removed.")
    return redirect("/users")


def _schedule(
    request: Request, page: Page, *, error: str | None = None, status: int = 200,
    values: dict[str, str] | None = None,
) -> Response:  # fmt: skip
    view = schedule.get_schedule(page.ctx, page.actor)
    return render(
        request, page, "schedule.html", schedule=view, error=error, zones=COMMON_ZONES,
        values=values or {"cron": view.cron, "timezone": view.timezone,
                          "enabled": "on" if view.enabled else ""},
        status=status, nav="schedule",
    )  # fmt: skip


@router.get("/settings/schedule")
def show_schedule(request: Request, page: CurrentPage) -> Response:
    return _schedule(request, page)


@router.post("/settings/schedule")
def save_schedule(request: Request, page: Form) -> Response:
    try:
        schedule.set_schedule(
            page.ctx, page.actor, enabled=page.flag("enabled"), cron=page.text("cron"),
            timezone=page.text("timezone") or "UTC",
        )  # fmt: skip
    except AudiencesyncError as error:
        return _schedule(
            request, page, error=error.message, status=error.http_status, values=page.values()
        )
    page.flash("The refresh schedule was saved.")
    return redirect("/settings/schedule")


@router.get("/audit")
def audit_log(request: Request, page: CurrentPage) -> Response:
    target = request.query_params.get("target") or None
    limit_text = request.query_params.get("limit", "100")
    limit = min(1000, max(1, int(limit_text))) if limit_text.isdigit() else 100
    entries = audit.list_entries(page.ctx, page.actor, limit=limit, target=target)
    return render(
        request, page, "audit.html", entries=entries, target=target or "", limit=limit,
        nav="audit",
    )  # fmt: skip
