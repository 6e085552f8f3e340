"""Data > Exports: the list, the add/edit form, an export's page with runs, chart, progress."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from audiencesync.control.models import Role
from audiencesync.control.permissions import Action, allowed
from audiencesync.errors import AudiencesyncError
from audiencesync.profiles import store
from audiencesync.segments import service as segments
from audiencesync.sync import connections, exports, runs, schedule
from audiencesync.sync.exports import ExportSpec, ExportView
from audiencesync.web.charts import run_chart
from audiencesync.web.common import CurrentPage, Form, Page, Posted, redirect, render

router = APIRouter()
UI_TRIGGER = "on_demand"
ACTIVE = ("queued", "running")


def usable_connections(page: Page) -> list[connections.ConnectionView]:
    """Connections the user may export through (contributors: those shared with them)."""
    if not allowed(page.actor, Action.EDIT_EXPORTS):
        return []
    return connections.list_connections(page.ctx, page.actor)


def may_edit(page: Page, view: ExportView, usable: list[str]) -> bool:
    """Whether the buttons that change or run ``view`` would succeed for this user."""
    if not allowed(page.actor, Action.EDIT_EXPORTS):
        return False
    return page.actor.role is Role.ADMIN or view.connection in usable


@router.get("/exports")
def list_exports(request: Request, page: CurrentPage) -> Response:
    usable = [c.name for c in usable_connections(page)]
    views = exports.list_exports(page.ctx, page.actor)
    return render(
        request, page, "exports.html", exports=views, usable=usable,
        editable={v.name: may_edit(page, v, usable) for v in views},
        system=schedule.get_schedule(page.ctx, page.actor), nav="exports",
    )  # fmt: skip


def _form(
    request: Request, page: Page, *, values: dict[str, object], editing: str | None,
    error: str | None = None, status: int = 200, fragment: bool = False,
) -> Response:  # fmt: skip
    datasets = store.list_datasets(page.ctx, page.actor)
    dataset = str(values.get("dataset") or (datasets[0].name if datasets else ""))
    columns = (
        [c.name for c in store.get_dataset(page.ctx, page.actor, dataset).columns]
        if dataset else []
    )  # fmt: skip
    names = (
        [s.name for s in segments.list_segments(page.ctx, page.actor, dataset=dataset)]
        if dataset
        else []
    )
    return render(
        request, page, "export_form.html" if not fragment else "export_matching.html",
        values={**values, "dataset": dataset}, editing=editing, datasets=datasets,
        columns=columns, segment_names=names, connections=usable_connections(page),
        error=error, status=status, fragment=fragment, nav="exports",
    )  # fmt: skip


@router.get("/exports/new")
def new_export(request: Request, page: CurrentPage) -> Response:
    values: dict[str, object] = {
        "mode": "mirror", "schedule": "system", "timezone": "UTC", "audience_choice": "existing",
        "dataset": request.query_params.get("dataset", ""), "segments": [],
    }  # fmt: skip
    return _form(request, page, values=values, editing=None)


@router.get("/exports/matching")
def matching_fields(request: Request, page: CurrentPage) -> Response:
    """The data-matching and segment fields of one dataset (htmx swaps them in)."""
    values: dict[str, object] = {"dataset": request.query_params.get("dataset", ""), "segments": []}
    return _form(request, page, values=values, editing=None, fragment=True)


def _values(page: Posted) -> dict[str, object]:
    return {**page.values(), "segments": page.texts("segments")}


def _spec(page: Posted) -> ExportSpec:
    create = page.text("audience_choice") == "create"
    schedule = page.text("schedule") or "system"
    if schedule == "cron":
        schedule = page.text("cron")
    return ExportSpec(
        name=page.text("name"),
        connection=page.text("connection"),
        segments=tuple(page.texts("segments")),
        email_field=page.optional("email_field"),
        phone_field=page.optional("phone_field"),
        maid_field=page.optional("maid_field"),
        default_country=page.optional("default_country"),
        audience_id=None if create else page.optional("audience_id"),
        create_audience=create,
        audience_name=page.optional("audience_name") if create else None,
        mode=page.text("mode") or "mirror",
        schedule=schedule,
        timezone=page.text("timezone") or "UTC",
        enabled=page.flag("enabled") if page.text("editing") else True,
    )


@router.post("/exports/new")
def create_export(request: Request, page: Form) -> Response:
    if page.text("action") == "dataset":
        return _form(request, page, values={**_values(page), "segments": []}, editing=None)
    try:
        view = exports.add_export(page.ctx, page.actor, _spec(page))
    except AudiencesyncError as error:
        return _form(request, page, values=_values(page), editing=None, error=error.message,
                     status=error.http_status)  # fmt: skip
    page.flash(
        f"Export {view.name} was saved. It runs with the scheduled refresh, or with Run now."
    )
    return redirect(f"/exports/{view.name}")


def _values_of(view: ExportView) -> dict[str, object]:
    custom = view.schedule not in ("system", "manual")
    return {
        "name": view.name, "connection": view.connection or "", "dataset": view.dataset,
        "audience_choice": "existing", "audience_id": view.audience_id,
        "email_field": view.email_field or "", "phone_field": view.phone_field or "",
        "maid_field": view.maid_field or "", "default_country": view.default_country or "",
        "segments": list(view.segments), "mode": view.mode,
        "schedule": "cron" if custom else view.schedule, "cron": view.schedule if custom else "",
        "timezone": view.timezone, "enabled": "on" if view.enabled else "",
    }  # fmt: skip


@router.get("/exports/{name}/edit")
def edit_export(request: Request, page: CurrentPage, name: str) -> Response:
    view = exports.get_export(page.ctx, page.actor, name)
    return _form(request, page, values=_values_of(view), editing=view.name)


@router.post("/exports/{name}/edit")
def update_export(request: Request, page: Form, name: str) -> Response:
    if page.text("action") == "dataset":
        return _form(request, page, values={**_values(page), "segments": []}, editing=name)
    try:
        view = exports.update_export(page.ctx, page.actor, name, _spec(page))
    except AudiencesyncError as error:
        return _form(request, page, values=_values(page), editing=name, error=error.message,
                     status=error.http_status)  # fmt: skip
    page.flash(f"Export {view.name} was saved.")
    return redirect(f"/exports/{view.name}")


def _panel_context(page: Page, name: str) -> dict[str, Any]:
    history = runs.list_runs(page.ctx, page.actor, export=name, limit=50)
    active = next((r for r in history if r.status in ACTIVE), None)
    return {"runs": history, "active": active, "chart": run_chart(history), "name": name}


@router.get("/exports/{name}")
def show_export(request: Request, page: CurrentPage, name: str) -> Response:
    view = exports.get_export(page.ctx, page.actor, name)
    usable = [c.name for c in usable_connections(page)]
    return render(
        request, page, "export.html", export=view, editable=may_edit(page, view, usable),
        nav="exports", **_panel_context(page, view.name),
    )  # fmt: skip


@router.get("/exports/{name}/runs-panel")
def runs_panel(request: Request, page: CurrentPage, name: str) -> Response:
    """Progress, chart and history; polled every second while a run is active."""
    view = exports.get_export(page.ctx, page.actor, name)
    usable = [c.name for c in usable_connections(page)]
    return render(
        request, page, "export_runs.html", export=view, fragment=True,
        editable=may_edit(page, view, usable), **_panel_context(page, name),
    )  # fmt: skip


@router.post("/exports/{name}/run")
def run_now(page: Form, name: str) -> Response:
    run_id = runs.request_run(
        page.ctx, page.actor, name, trigger=UI_TRIGGER, full=page.flag("full")
    )
    page.flash(f"Run {run_id} was queued: its progress shows below.")
    return redirect(f"/exports/{name}")


@router.post("/exports/{name}/dry-run")
def dry_run(page: Form, name: str) -> Response:
    run_id = runs.request_run(page.ctx, page.actor, name, trigger=UI_TRIGGER, dry_run=True)
    page.flash(f"Dry run {run_id} was queued: it counts what would change and sends nothing.")
    return redirect(f"/exports/{name}")


@router.post("/exports/{name}/enable")
def enable(page: Form, name: str) -> Response:
    view = exports.set_enabled(page.ctx, page.actor, name, enabled=page.flag("enabled"))
    page.flash(f"Export {view.name} is now {'enabled' if view.enabled else 'disabled'}.")
    return redirect(f"/exports/{name}")


@router.post("/exports/{name}/duplicate")
def duplicate(page: Form, name: str) -> Response:
    view = exports.duplicate_export(page.ctx, page.actor, name, page.text("new_name"))
    page.flash(f"Export {view.name} is a disabled copy of {name}: review it, then enable it.")
    return redirect(f"/exports/{view.name}")


@router.post("/exports/{name}/clear")
def clear(page: Form, name: str) -> Response:
    runs.clear_audience(page.ctx, page.actor, name, confirm=page.flag("confirm"))
    page.flash(f"The Snapchat audience of export {name} was emptied.")
    return redirect(f"/exports/{name}")


@router.post("/exports/{name}/remove")
def remove(page: Form, name: str) -> Response:
    exports.remove_export(page.ctx, page.actor, name)
    page.flash(f"Export {name} was removed; its Snapchat audience was kept.")
    return redirect("/exports")


@router.get("/runs/{run_id}")
def show_run(request: Request, page: CurrentPage, run_id: int) -> Response:
    run = runs.get_run(page.ctx, page.actor, run_id)
    view = exports.get_export(page.ctx, page.actor, run.export)
    usable = [c.name for c in usable_connections(page)]
    return render(
        request, page, "run.html", run=run, export=view,
        editable=may_edit(page, view, usable), nav="exports",
    )  # fmt: skip


@router.post("/runs/{run_id}/cancel")
def cancel(page: Form, run_id: int) -> Response:
    run = runs.cancel_run(page.ctx, page.actor, run_id)
    page.flash(f"Run {run_id} was asked to stop.")
    return redirect(f"/exports/{run.export}")
