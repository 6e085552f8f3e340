"""Admin > Privacy: suppression lists, erasure, and what personal data is held where."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from audiencesync import wording
from audiencesync.api.deps import RecordId
from audiencesync.errors import AudiencesyncError, UserInputError
from audiencesync.sync import exports, privacy, retention
from audiencesync.web.common import CurrentPage, Form, FormError, Page, Posted, redirect, render

router = APIRouter()
KINDS = ("email", "phone", "maid")


def _page(
    request: Request, page: Page, *, error: FormError = None, status: int = 200,
    values: dict[str, Any] | None = None, erasure: privacy.ErasureView | None = None,
    form: str | None = None,
) -> Response:  # fmt: skip
    """The privacy page; ``form`` names the failed form ("list" or "erase"): both have a
    default country of phones."""
    privacy.require_admin(page.actor)
    if erasure is not None:  # each export's note with its action in the web's words
        erasure = replace(erasure, exports=wording.erasure_exports(erasure.exports, cli=False))
    return render(
        request, page, "privacy.html",
        lists=privacy.list_lists(page.ctx, page.actor),
        erased=privacy.erased_summary(page.ctx),
        erasures=privacy.list_erasures(page.ctx, page.actor, limit=20),
        report=retention.report(page.ctx, page.actor),
        export_names=[e.name for e in exports.list_exports(page.ctx, page.actor)],
        kinds=KINDS, error=error, values=values or {}, erasure=erasure, error_form=form,
        status=status, nav="privacy",
    )  # fmt: skip


@router.get("/privacy")
def show(request: Request, page: CurrentPage) -> Response:
    return _page(request, page)


@router.post("/privacy/lists")
def add_list(request: Request, page: Form) -> Response:
    try:
        upload = page.file("file")
        options: dict[str, Any] = {
            "kind": page.text("type"), "column": page.optional("column"),
            "hashed": page.flag("hashed"), "all_exports": page.text("applies") == "all",
            "exports": [] if page.text("applies") == "all" else page.texts("exports"),
            "default_country": page.optional("default_country"),
        }  # fmt: skip
        if upload is not None:
            view = privacy.create_list_from_upload(
                page.ctx, page.actor, page.text("name"), upload.file, upload.filename or "",
                **options,
            )  # fmt: skip
        elif page.text("dataset"):
            view = privacy.create_list(
                page.ctx, page.actor, page.text("name"), dataset=page.text("dataset"), **options
            )
        else:
            raise UserInputError(
                "choose a file to upload, or name a dataset and its column.", field="list_source"
            )
    except AudiencesyncError as error:
        return _page(request, page, error=error, status=error.http_status,
                     values=_list_values(page), form="list")  # fmt: skip
    page.flash(
        f"Suppression list {view.name} holds {view.size:,} {view.kind} identifier(s); the next "
        "run of each export it applies to removes those its audience holds."
    )
    return redirect("/privacy")


@router.post("/privacy/lists/{name}/remove")
def remove_list(request: Request, page: Form, name: str) -> Response:
    try:
        privacy.remove_list(page.ctx, page.actor, name)
    except AudiencesyncError as error:
        return _page(request, page, error=error, status=error.http_status)
    page.flash(f"Suppression list {name} was removed.")
    return redirect("/privacy")


def _list_values(page: Posted) -> dict[str, Any]:
    """The list form's inputs to fill it again: its text fields and the exports ticked."""
    return {**page.values(), "exports": page.texts("exports")}


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


@router.post("/privacy/erase")
def erase(request: Request, page: Form) -> Response:
    """The identifiers typed are hashed and forgotten: the form is never filled again
    with them, even after an error (only the default country is)."""
    try:
        view = privacy.erase(
            page.ctx, page.actor, emails=_lines(page.text("emails")),
            phones=_lines(page.text("phones")), maids=_lines(page.text("maids")),
            default_country=page.optional("default_country"),
        )  # fmt: skip
    except AudiencesyncError as error:
        values = {"erase_default_country": page.text("default_country")}
        return _page(
            request, page, error=error, status=error.http_status, values=values, form="erase"
        )
    return _page(request, page, erasure=view)


@router.post("/privacy/erasures/{erasure_id}/resume")
def resume(request: Request, page: Form, erasure_id: RecordId) -> Response:
    try:
        view = privacy.resume_erasure(page.ctx, page.actor, erasure_id)
    except AudiencesyncError as error:
        return _page(request, page, error=error, status=error.http_status)
    return _page(request, page, erasure=view)
