"""Admin > Sources: the databases linked datasets read from."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from audiencesync.errors import AudiencesyncError
from audiencesync.profiles import sources
from audiencesync.web.common import CurrentPage, Form, FormError, Page, redirect, render

router = APIRouter()


def _list(
    request: Request, page: Page, *, error: FormError = None, status: int = 200,
    values: dict[str, str] | None = None,
) -> Response:  # fmt: skip
    return render(
        request, page, "sources.html", sources=sources.list_sources(page.ctx, page.actor),
        error=error, values=values or {}, status=status, nav="sources",
    )  # fmt: skip


@router.get("/sources")
def list_sources(request: Request, page: CurrentPage) -> Response:
    return _list(request, page)


@router.post("/sources")
def add_source(request: Request, page: Form) -> Response:
    try:
        view = sources.add_source(page.ctx, page.actor, page.text("name"), url=page.text("url"))
    except AudiencesyncError as error:
        values = {"name": page.text("name")}  # the URL is never sent back
        return _list(request, page, error=error, status=error.http_status, values=values)
    page.flash(f"Source {view.name} was added ({view.backend}, {view.location}).")
    return redirect("/sources")


@router.post("/sources/{name}/remove")
def remove_source(request: Request, page: Form, name: str) -> Response:
    try:
        sources.remove_source(page.ctx, page.actor, name)
    except AudiencesyncError as error:
        return _list(request, page, error=error, status=error.http_status)
    page.flash(f"Source {name} was removed.")
    return redirect("/sources")
