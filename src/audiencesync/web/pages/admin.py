"""Admin > Users, Settings > Schedule, and the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from audiencesync.control import audit, users
from audiencesync.control.models import Role
from audiencesync.errors import AudiencesyncError, UserInputError
from audiencesync.profiles import store
from audiencesync.segments import service as segment_service
from audiencesync.sync import exports, schedule, scheduler
from audiencesync.web.common import CurrentPage, Form, FormError, Page, redirect, render
from audiencesync.wording import field_label

router = APIRouter()
COMMON_ZONES = ("UTC", "Europe/London", "Europe/Paris", "America/New_York", "America/Los_Angeles",
                "Asia/Tokyo", "Australia/Sydney")  # fmt: skip


def _users(
    request: Request, page: Page, *, error: FormError = None, status: int = 200,
    values: dict[str, str] | None = None, form: str | None = None,
) -> Response:  # fmt: skip
    """The users page; ``form`` names the failed form ("add", "role:NAME" or
    "password:NAME"): each row has forms whose inputs share a name."""
    return render(
        request, page, "users.html", users=users.list_users(page.ctx, page.actor),
        roles=[r.value for r in Role], error=error, values=values or {},
        error_form=form, status=status, nav="users",
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
        return _users(
            request, page, error=error, status=error.http_status, values=values, form="add"
        )
    page.flash(f"User {page.text('name')} was added as {page.text('role')}.")
    return redirect("/users")


@router.post("/users/{name}/role")
def set_role(request: Request, page: Form, name: str) -> Response:
    try:
        users.set_role(page.ctx, page.actor, name, users.parse_role(page.text("role")))
    except AudiencesyncError as error:
        return _users(request, page, error=error, status=error.http_status, form=f"role:{name}")
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
        return _users(request, page, error=error, status=error.http_status, form=f"password:{name}")
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
        return _users(request, page, error=error, status=error.http_status)
    page.flash(f"User {name} was removed.")
    return redirect("/users")


def _schedule(
    request: Request, page: Page, *, error: FormError = None, status: int = 200,
    values: dict[str, str] | None = None,
) -> Response:  # fmt: skip
    view = schedule.get_schedule(page.ctx, page.actor)
    values = values or {
        "cron": view.cron, "timezone": view.timezone, "enabled": "on" if view.enabled else "",
    }  # fmt: skip
    cron, zone = values.get("cron", ""), values.get("timezone", "") or "UTC"
    followers = [
        e for e in exports.list_exports(page.ctx, page.actor)
        if e.schedule == "system" and e.enabled and e.connection
    ]  # fmt: skip
    return render(
        request, page, "schedule.html", schedule=view, error=error, zones=COMMON_ZONES,
        values=values, status=status, nav="schedule",
        cron_words=f"{schedule.describe_cron(cron)} {zone}" if croniter_valid(cron) else "",
        refresh_datasets=sum(
            1 for d in store.list_datasets(page.ctx, page.actor) if d.kind == "file"
        ),
        refresh_segments=len(segment_service.list_segments(page.ctx, page.actor)),
        refresh_exports=len(followers),
    )  # fmt: skip


@router.get("/settings/schedule")
def show_schedule(request: Request, page: CurrentPage) -> Response:
    return _schedule(request, page)


@router.post("/settings/schedule/refresh")
def refresh_now(page: Form) -> Response:
    result = scheduler.refresh_now(page.ctx, page.actor)
    page.flash(
        f"The system refresh ran: {len(result.refreshed)} dataset(s) re-imported, "
        f"{len(result.evaluated)} segment(s) counted, {len(result.queued)} export(s) queued"
        + (
            f"; {len(result.problems)} problem(s): " + "; ".join(result.problems)
            if result.problems
            else "."
        )
    )
    return redirect("/settings/schedule")


@router.get("/settings/schedule/describe")
def describe(request: Request, page: CurrentPage) -> Response:
    """A cron expression in words, as it is typed (htmx)."""
    cron = request.query_params.get("cron", "").strip()[:200]
    zone = request.query_params.get("timezone", "").strip()[:100] or "UTC"
    return render(
        request, page, "cron_words.html", fragment=True, cron=cron,
        words=schedule.describe_cron(cron) + f" {zone}" if croniter_valid(cron) else "",
    )  # fmt: skip


def croniter_valid(cron: str) -> bool:
    try:
        schedule.check_cron(cron, "UTC")
    except AudiencesyncError:
        return False
    return True


@router.post("/settings/schedule")
def save_schedule(request: Request, page: Form) -> Response:
    try:
        schedule.set_schedule(
            page.ctx, page.actor, enabled=page.flag("enabled"), cron=page.text("cron"),
            timezone=page.text("timezone") or "UTC",
        )  # fmt: skip
    except AudiencesyncError as error:
        return _schedule(request, page, error=error, status=error.http_status, values=page.values())
    page.flash("The refresh schedule was saved.")
    return redirect("/settings/schedule")


AUDIT_LIMITS = (1, 100, 1000)  # least, default, most entries a page shows


def _audit_limit(text: str) -> int:
    """How many entries ``?limit=`` asks for, within AUDIT_LIMITS; anything but ASCII
    digits reads as the default (``str.isdigit`` takes "²", which ``int`` refuses), and a
    number too long for ``int`` (thousands of digits) as the most."""
    least, default, most = AUDIT_LIMITS
    if not (text.isascii() and text.isdigit()):
        return default
    significant = text.lstrip("0") or "0"
    if len(significant) > len(str(most)):
        return most
    return min(most, max(least, int(significant)))


@router.get("/audit")
def audit_log(request: Request, page: CurrentPage) -> Response:
    target = request.query_params.get("target") or None
    limit = _audit_limit(request.query_params.get("limit", ""))
    entries = audit.list_entries(page.ctx, page.actor, limit=limit, target=target)
    names = audit.id_names(page.ctx, page.actor)
    return render(
        request, page, "audit.html", entries=entries, target=target or "", limit=limit,
        nav="audit", changes=[_changes(e.before, e.after, names) for e in entries],
    )  # fmt: skip


def _words(key: str, value: Any, names: dict[str, dict[int, str]]) -> str:
    """One recorded value in words: ids as names, yes/no, lists joined."""
    if value is None or value == "" or value == []:
        return "—"
    if key in names and isinstance(value, int):
        return names[key].get(value, f"#{value} (removed)")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_words(key, v, names) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_words(str(k), v, names)}" for k, v in value.items())
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _changes(
    before: dict[str, Any] | None, after: dict[str, Any] | None, names: dict[str, dict[int, str]]
) -> list[tuple[str, str, str]]:
    """What an entry changed, field by field: (field, before, after) in words."""
    old, new = before or {}, after or {}
    rows = []
    for key in dict.fromkeys([*old, *new]):
        if key in old and key in new and old[key] == new[key]:
            continue
        label = field_label(key) or key.removesuffix("_id").replace("_", " ")
        rows.append((
            label,
            _words(key, old[key], names) if key in old else "",
            _words(key, new[key], names) if key in new else "",
        ))  # fmt: skip
    return rows
