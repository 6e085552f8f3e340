"""Data > Exports: the list, the add/edit form, an export's page with runs, chart, progress."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from audiencesync.api.deps import RecordId
from audiencesync.control.models import Role
from audiencesync.control.permissions import Action, allowed, require
from audiencesync.control.zones import viewer_zone
from audiencesync.errors import AudiencesyncError, UserInputError
from audiencesync.profiles import store
from audiencesync.segments import service as segments
from audiencesync.sync import alerts, choices, connections, exports, runs, schedule
from audiencesync.sync.engine import DEFAULT_MAX_REMOVAL_SHARE
from audiencesync.sync.exports import ExportSpec, ExportView
from audiencesync.web.charts import export_chart, run_readings
from audiencesync.web.common import CurrentPage, Form, FormError, Page, Posted, redirect, render
from audiencesync.wording import for_web

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


def _audiences(
    page: Page, values: dict[str, object], usable: list[connections.ConnectionView]
) -> tuple[list[choices.AudienceChoice] | None, str | None]:
    """The connection's customer lists (None when no usable connection is chosen)."""
    chosen = str(values.get("connection") or "")
    active = {c.name for c in usable if c.status != "needs_reauth"}
    if chosen not in active:
        return None, None
    try:
        found = choices.list_audiences(
            page.ctx, page.actor, chosen, search=str(values.get("audience_search") or "") or None
        )
    except AudiencesyncError as error:
        return None, for_web(error)
    return found, None


def _previews(page: Page, values: dict[str, object], dataset: str) -> list[choices.FieldPreview]:
    if not dataset:
        return []
    mapping = {key: str(values.get(key) or "") or None for key in choices.FIELD_OF.values()}
    try:
        return choices.preview_fields(
            page.ctx, page.actor, dataset, mapping,
            default_country=str(values.get("default_country") or "") or None,
        )  # fmt: skip
    except AudiencesyncError:
        return []


def _form(
    request: Request, page: Page, *, values: dict[str, object], editing: str | None,
    error: FormError = None, status: int = 200, fragment: str | None = None,
) -> Response:  # fmt: skip
    require(page.actor, Action.EDIT_EXPORTS)
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
    usable = usable_connections(page)
    active = [c for c in usable if c.status != "needs_reauth"]
    if not values.get("connection") and len(active) == 1 and not editing:
        values = {**values, "connection": active[0].name}  # the only one: preselected
    if dataset and not editing and not any(values.get(k) for k in choices.FIELD_OF.values()):
        values = {**values, **choices.suggest_fields(page.ctx, page.actor, dataset)}
    audiences, audience_error = (
        _audiences(page, values, usable) if fragment in (None, "audiences") else (None, None)
    )
    chosen = next((c for c in usable if c.name == values.get("connection")), None)
    template = {
        None: "export_form.html", "matching": "export_matching.html",
        "audiences": "export_audiences.html",
    }[fragment]  # fmt: skip
    return render(
        request, page, template,
        values={**values, "dataset": dataset}, editing=editing, datasets=datasets,
        columns=columns, segment_names=names, connections=usable,
        error=error, status=status, fragment=fragment is not None, nav="exports",
        audiences=audiences, audience_error=audience_error, chosen_connection=chosen,
        cron_words=_cron_words(values),
        previews=_previews(page, values, dataset) if fragment != "audiences" else [],
        alert_channels=(
            alerts.channel_names(page.ctx, page.actor)
            if allowed(page.actor, Action.EDIT_EXPORTS) else []
        ),
        alert_events=[(e.value, alerts.EVENT_WORDS[e]) for e in alerts.ALL_EVENTS],
    )  # fmt: skip


def _cron_words(values: dict[str, object]) -> str:
    cron = str(values.get("cron") or "")
    try:
        schedule.check_cron(cron, "UTC")
    except AudiencesyncError:
        return ""
    return f"{schedule.describe_cron(cron)} {values.get('timezone') or 'UTC'}"


@router.get("/exports/new")
def new_export(request: Request, page: CurrentPage) -> Response:
    values: dict[str, object] = {
        # A new export's cron speaks the user's zone when they chose one.
        "mode": "mirror", "schedule": "system", "timezone": page.actor.time_zone or "UTC",
        "audience_choice": "existing",
        "dataset": request.query_params.get("dataset", ""), "segments": [],
        "retention_days": "9999",
        **_alert_values(alerts.ExportAlerts(events=tuple(e.value for e in alerts.ALL_EVENTS))),
    }  # fmt: skip
    return _form(request, page, values=values, editing=None)


@router.get("/exports/matching")
def matching_fields(request: Request, page: CurrentPage) -> Response:
    """The data-matching and segment fields of one dataset (htmx swaps them in)."""
    query = request.query_params
    values: dict[str, object] = {
        "dataset": query.get("dataset", ""), "segments": query.getlist("segments"),
        "email_field": query.get("email_field", ""), "phone_field": query.get("phone_field", ""),
        "maid_field": query.get("maid_field", ""),
        "default_country": query.get("default_country", ""),
    }  # fmt: skip
    if query.get("changed") == "dataset":
        values = {**values, "segments": [], "email_field": "", "phone_field": "", "maid_field": ""}
    return _form(request, page, values=values, editing=None, fragment="matching")


@router.get("/exports/audiences")
def audience_choices(request: Request, page: CurrentPage) -> Response:
    """The chosen connection's customer lists, filtered by the search box (htmx)."""
    query = request.query_params
    values: dict[str, object] = {
        "connection": query.get("connection", ""), "audience_id": query.get("audience_id", ""),
        "audience_search": query.get("audience_search", ""), "audience_choice": "existing",
    }  # fmt: skip
    return _form(request, page, values=values, editing=None, fragment="audiences")


def _values(page: Posted) -> dict[str, object]:
    return {
        **page.values(), "segments": page.texts("segments"),
        "alert_channels": page.texts("alert_channels"), "alert_events": page.texts("alert_events"),
    }  # fmt: skip


def _dataset_changed(page: Posted) -> dict[str, object]:
    """Another dataset: its own segments and fields (suggested again)."""
    blank = {"segments": [], "email_field": "", "phone_field": "", "maid_field": ""}
    return {**_values(page), **blank}


def _alert_values(chosen: alerts.ExportAlerts) -> dict[str, object]:
    share = round(chosen.reject_share_threshold * 100, 2)
    return {
        "alert_channels": list(chosen.channels), "alert_events": list(chosen.events),
        "alert_reject_share": f"{share:g}",
    }  # fmt: skip


def _alert_spec(page: Posted) -> dict[str, Any]:
    """The form's alert choices as ExportSpec fields (none when the form had no alerts)."""
    if not page.text("alerts_form"):
        return {}
    channels = tuple(page.texts("alert_channels"))
    events = tuple(page.texts("alert_events"))
    if channels and not events:
        raise UserInputError("tick at least one alert event, or no alert channel.")
    share_text = page.text("alert_reject_share").strip()
    try:
        share = float(share_text) / 100 if share_text else None
    except ValueError:
        raise UserInputError(
            f"{share_text!r} is not a share: give a percentage between 0 and 100, e.g. 20."
        ) from None
    return {
        "alert_channels": channels,
        "alert_events": events or None,
        "alert_reject_share": share,
    }


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
        audience_description=page.optional("audience_description") if create else None,
        retention_days=_days(page.optional("retention_days")) if create else 9999,
        ad_account_id=page.optional("ad_account_id") if create else None,
        mode=page.text("mode") or "mirror",
        schedule=schedule,
        timezone=page.text("timezone") or "UTC",
        enabled=page.flag("enabled") if page.text("editing") else True,
        max_removal_share=_share(page.optional("max_removal_share")),
        consent_field=page.optional("consent_field"),
        consent_values=tuple(
            v.strip() for v in page.text("consent_values").split(",") if v.strip()
        ),
        **_alert_spec(page),
    )


def _days(text: str | None) -> int:
    """The form's retention in days (empty: lifetime, 9999)."""
    if text is None:
        return 9999
    try:
        return int(text)
    except ValueError:
        raise UserInputError(
            f"{text!r} is not a number of days: give 1 to 9999 (9999 = lifetime).",
            field="retention_days",
        ) from None


def _share(text: str | None) -> float:
    """The form's maximum removal share, in percent (empty: the default)."""
    if text is None:
        return DEFAULT_MAX_REMOVAL_SHARE
    number = text.strip().rstrip("%").strip()
    try:
        percent = float(number)
    except ValueError:
        raise UserInputError(
            f"{text!r} is not a percentage: give the largest share of the audience a run may "
            "remove without approval, from 0 to 100 (for example 20).",
            field="max_removal_share",
        ) from None
    # Checked here, in the form's scale: the service's own check speaks of 0 to 1 (the API's).
    if not 0 <= percent <= 100:
        raise UserInputError(
            f"{number}% is not a share: give a percentage from 0 to 100 (for example 20).",
            field="max_removal_share",
        )
    return percent / 100


@router.post("/exports/new")
def create_export(request: Request, page: Form) -> Response:
    if page.text("action") == "dataset":
        return _form(request, page, values=_dataset_changed(page), editing=None)
    if page.text("action") in ("audiences", "preview"):
        return _form(request, page, values=_values(page), editing=None)
    try:
        view = exports.add_export(page.ctx, page.actor, _spec(page))
    except AudiencesyncError as error:
        return _form(request, page, values=_values(page), editing=None, error=error,
                     status=error.http_status)  # fmt: skip
    # The export's own schedule words (the system refresh may be off): saving ran nothing.
    sentence = view.schedule_sentence
    words = sentence.in_zone(viewer_zone(page.actor.time_zone))
    when = f"it is {words}" if sentence.stem.startswith(("off", "paused")) else f"it runs {words}"
    page.flash(f"Export {view.name} was saved; {when}. Run now runs it at once.")
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
        "max_removal_share": f"{view.max_removal_share * 100:g}",
        "consent_field": view.consent_field or "",
        "consent_values": ", ".join(view.consent_values),
        **_alert_values(view.alerts),
    }  # fmt: skip


@router.get("/exports/{name}/edit")
def edit_export(request: Request, page: CurrentPage, name: str) -> Response:
    view = exports.get_export(page.ctx, page.actor, name)
    return _form(request, page, values=_values_of(view), editing=view.name)


@router.post("/exports/{name}/edit")
def update_export(request: Request, page: Form, name: str) -> Response:
    if page.text("action") == "dataset":
        return _form(request, page, values=_dataset_changed(page), editing=name)
    if page.text("action") in ("audiences", "preview"):
        return _form(request, page, values=_values(page), editing=name)
    try:
        view = exports.update_export(page.ctx, page.actor, name, _spec(page))
    except AudiencesyncError as error:
        return _form(request, page, values=_values(page), editing=name, error=error,
                     status=error.http_status)  # fmt: skip
    page.flash(f"Export {view.name} was saved.")
    return redirect(f"/exports/{view.name}")


def _panel_context(page: Page, name: str) -> dict[str, Any]:
    history = [
        dataclasses.replace(r, counts=runs.display_counts(r.counts))
        for r in runs.list_runs(page.ctx, page.actor, export=name, limit=50)
    ]
    readings = runs.export_readings(page.ctx, page.actor, name, limit=200)
    active = next((r for r in history if r.status in ACTIVE), None)
    # Each run's own reading: what its upload matched, not a daily reading long after.
    latest = run_readings(history, readings)
    return {
        "runs": history, "active": active, "name": name, "run_readings": latest,
        "chart": export_chart(history, readings, viewer_zone(page.actor.time_zone)),
        "readings": readings,
    }  # fmt: skip


@router.get("/exports/{name}")
def show_export(request: Request, page: CurrentPage, name: str) -> Response:
    view = exports.get_export(page.ctx, page.actor, name)
    usable = [c.name for c in usable_connections(page)]
    return render(
        request, page, "export.html", export=view, editable=may_edit(page, view, usable),
        nav="exports", validation_notes=exports.validation_notes(view.validation),
        **_panel_context(page, view.name),
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


@router.post("/exports/{name}/replace")
def replace(page: Form, name: str) -> Response:
    if not page.flag("confirm"):
        page.flash("Tick the box to confirm: a replace empties the Snapchat audience first.")
        return redirect(f"/exports/{name}")
    run_id = runs.request_run(
        page.ctx, page.actor, name, trigger=UI_TRIGGER, replace=True, confirm=True
    )
    page.flash(
        f"Replace run {run_id} was queued: it empties the audience, then uploads every member."
    )
    return redirect(f"/exports/{name}")


@router.post("/exports/{name}/audience")
def read_audience(page: Form, name: str) -> Response:
    reading = runs.read_audience(page.ctx, page.actor, name)
    if reading.error is not None:
        page.flash(f"The audience was not read: {reading.error}", kind="error")
    elif not reading.complete:
        page.flash(f"Snapchat is still matching the upload ({reading.upload_status}).")
    else:
        page.flash(
            f"Snapchat reports about {reading.approximate_number_users or 0:,} matched users."
        )
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
def show_run(request: Request, page: CurrentPage, run_id: RecordId) -> Response:
    run = runs.get_run(page.ctx, page.actor, run_id)
    run = dataclasses.replace(run, counts=runs.display_counts(run.counts))
    view = exports.get_export(page.ctx, page.actor, run.export)
    usable = [c.name for c in usable_connections(page)]
    return render(
        request, page, "run.html", run=run, export=view,
        editable=may_edit(page, view, usable), nav="exports",
    )  # fmt: skip


@router.get("/runs/{run_id}/rejects.csv")
def rejects_csv(page: CurrentPage, run_id: RecordId) -> Response:
    """The run's reject samples as CSV (the same service as the API's rejects.csv)."""
    return Response(
        runs.reject_samples_csv(page.ctx, page.actor, run_id),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="run-{run_id}-rejects.csv"'},
    )


@router.post("/runs/{run_id}/approve")
def approve(page: Form, run_id: RecordId) -> Response:
    approval = runs.request_approval(page.ctx, page.actor, run_id)
    page.flash(f"Approved: run {approval} sends the removals run {run_id} held.")
    return redirect(f"/runs/{approval}")


@router.post("/runs/{run_id}/dismiss")
def dismiss(page: Form, run_id: RecordId) -> Response:
    runs.dismiss_run(page.ctx, page.actor, run_id)
    page.flash(f"Dismissed: the removals run {run_id} held were not sent.")
    return redirect(f"/runs/{run_id}")


@router.post("/runs/{run_id}/cancel")
def cancel(page: Form, run_id: RecordId) -> Response:
    run = runs.cancel_run(page.ctx, page.actor, run_id)
    page.flash(f"Run {run_id} was asked to stop.")
    return redirect(f"/exports/{run.export}")
