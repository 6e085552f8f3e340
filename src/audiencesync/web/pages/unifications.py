"""Unifications: several datasets matched into one person per profile; define, refresh,
figures and one profile explained."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from audiencesync.api.deps import UnifiedId
from audiencesync.errors import AudiencesyncError, UserInputError
from audiencesync.profiles import store
from audiencesync.profiles.unify import service as unify
from audiencesync.profiles.unify.rules import load_unification_text
from audiencesync.web.common import CurrentPage, Form, FormError, Page, redirect, render

router = APIRouter()

EXAMPLE_RULES = """fields:
  email: email
  phone: phone
  last_name: text
  postcode: code
match:
  - email
  - phone
  - [last_name, postcode]
default_country: GB
"""


def _list(
    request: Request, page: Page, *, error: FormError = None, status: int = 200,
    values: dict[str, str] | None = None,
) -> Response:  # fmt: skip
    return render(
        request, page, "unifications.html",
        unifications=unify.list_unifications(page.ctx, page.actor),
        datasets=[d for d in store.list_datasets(page.ctx, page.actor) if d.kind != "unified"],
        error=error, values=values or {"rules": EXAMPLE_RULES}, status=status, nav="profiles",
    )  # fmt: skip


@router.get("/unifications")
def list_unifications(request: Request, page: CurrentPage) -> Response:
    return _list(request, page)


@router.post("/unifications")
def define(request: Request, page: Form) -> Response:
    try:
        lines = [line.strip() for line in page.text("sources").splitlines() if line.strip()]
        if not lines:
            raise UserInputError("list the sources, one DATASET:KEY per line.", field="sources")
        sources = [unify.parse_source(line) for line in lines]
        rules = load_unification_text(page.text("rules"), source="the Rules box")
        view = unify.unify(page.ctx, page.actor, page.text("name"), sources=sources, rules=rules)
    except AudiencesyncError as error:
        return _list(request, page, error=error, status=error.http_status,
                     values=page.values())  # fmt: skip
    page.flash(
        f"Unified {view.stats.get('source_records_total', 0):,} records into "
        f"{view.stats.get('unified_profiles', 0):,} profiles."
    )
    return redirect(f"/unifications/{view.name}")


@router.get("/unifications/{name}")
def show(request: Request, page: CurrentPage, name: str) -> Response:
    view = unify.get_unification(page.ctx, page.actor, name)
    return render(request, page, "unification.html", u=view, stats=view.stats, nav="profiles")


@router.post("/unifications/{name}/refresh")
def refresh(page: Form, name: str) -> Response:
    view = unify.refresh(page.ctx, page.actor, name)
    page.flash(f"Unification {view.name} was refreshed: "
               f"{view.stats.get('unified_profiles', 0):,} profiles.")  # fmt: skip
    return redirect(f"/unifications/{view.name}")


@router.get("/unifications/{name}/profiles/{unified_id}")
def explain(request: Request, page: CurrentPage, name: str, unified_id: UnifiedId) -> Response:
    found = unify.explain(page.ctx, page.actor, name, unified_id)
    fields = sorted({f for r in found.records for f in r.fields})
    return render(request, page, "unified_profile.html", found=found, fields=fields,
                  nav="profiles")  # fmt: skip


@router.get("/unifications/{name}/lookup")
def lookup(page: CurrentPage, name: str, unified_id: UnifiedId) -> Response:
    return redirect(f"/unifications/{unify.get_unification(page.ctx, page.actor, name).name}"
                    f"/profiles/{unified_id}")  # fmt: skip
