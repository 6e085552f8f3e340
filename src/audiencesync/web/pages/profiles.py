"""Profiles: datasets, their schema and a sample; import (upload or path), refresh, remove."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from audiencesync.api.routes.datasets import import_upload, rows_of
from audiencesync.control.permissions import Action, require
from audiencesync.errors import AudiencesyncError, UserInputError
from audiencesync.profiles import linked, sources, store
from audiencesync.profiles.formats import parse_format
from audiencesync.segments import service as segments
from audiencesync.web.common import CurrentPage, Form, FormError, Page, redirect, render

router = APIRouter()


def _list(
    request: Request, page: Page, *, error: FormError = None, status: int = 200,
    values: dict[str, str] | None = None,
) -> Response:  # fmt: skip
    return render(
        request, page, "profiles.html", datasets=store.list_datasets(page.ctx, page.actor),
        sources=sources.list_sources(page.ctx, page.actor), error=error, values=values or {},
        status=status, nav="profiles",
    )  # fmt: skip


@router.get("/profiles")
def list_datasets(request: Request, page: CurrentPage) -> Response:
    return _list(request, page)


@router.post("/profiles/import")
def import_dataset(request: Request, page: Form) -> Response:
    upload = page.file("file")
    name, key, path = page.optional("name"), page.text("key"), page.text("path")
    file_format = page.optional("format")
    try:
        if not key:
            raise UserInputError(
                "give the key column: the field that identifies one profile.", field="key"
            )
        if upload is not None:
            view = import_upload(
                page.ctx, page.actor, upload, key=key, name=name, file_format=file_format,
                delimiter=page.optional("delimiter"), encoding=page.optional("encoding"),
                on_duplicate_key=page.text("on_duplicate_key") or "error",
            )  # fmt: skip
        elif path:
            policy = store.parse_on_duplicate_key(page.text("on_duplicate_key") or "error")
            fmt = parse_format(file_format) if file_format else None
            require(page.actor, Action.EDIT_DATASETS)
            store.check_import_folder(page.ctx, Path(path))
            view = store.import_file(
                page.ctx, page.actor, Path(path), key=key, name=name, file_format=fmt,
                delimiter=page.optional("delimiter"), encoding=page.optional("encoding"),
                on_duplicate_key=policy,
            )  # fmt: skip
        else:
            raise UserInputError("choose a file to upload, or give the path of one on the server.")
    except AudiencesyncError as error:
        return _list(request, page, error=error, status=error.http_status,
                     values=page.values())  # fmt: skip
    page.flash(f"Imported {view.row_count:,} profiles into dataset {view.name}.")
    return redirect(f"/profiles/{view.name}")


@router.post("/profiles/link")
def link_table(request: Request, page: Form) -> Response:
    try:
        view = linked.link(
            page.ctx, page.actor, page.text("link_name"), source=page.text("source"),
            table=page.text("table"), key=page.text("link_key"),
        )  # fmt: skip
    except AudiencesyncError as error:
        return _list(request, page, error=error, status=error.http_status,
                     values=page.values())  # fmt: skip
    page.flash(f"Linked dataset {view.name}: {view.row_count:,} profiles.")
    return redirect(f"/profiles/{view.name}")


@router.get("/profiles/{name}")
def show_dataset(request: Request, page: CurrentPage, name: str) -> Response:
    view = store.get_dataset(page.ctx, page.actor, name)
    columns, rows = rows_of(store.sample(page.ctx, page.actor, name, limit=20))
    used_by = [s.name for s in segments.list_segments(page.ctx, page.actor, dataset=name)]
    return render(
        request, page, "dataset.html", dataset=view, columns=columns, rows=rows,
        used_by=used_by, nav="profiles",
    )  # fmt: skip


@router.post("/profiles/{name}/refresh")
def refresh(page: Form, name: str) -> Response:
    view = store.refresh(page.ctx, page.actor, name, check_folders=True)
    page.flash(f"Dataset {view.name} was refreshed: {view.row_count:,} profiles.")
    return redirect(f"/profiles/{view.name}")


@router.post("/profiles/{name}/remove")
def remove(page: Form, name: str) -> Response:
    store.remove(page.ctx, page.actor, name)
    page.flash(f"Dataset {name} was removed.")
    return redirect("/profiles")
