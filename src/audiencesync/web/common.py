"""What every page shares: the signed-in user, CSRF-checked forms, rendering, messages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeAlias
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context as TemplateContext
from starlette.datastructures import FormData, UploadFile

from audiencesync.api.auth import SessionInfo, save_session_data
from audiencesync.api.deps import (
    CSRF_HEADER,
    Principal,
    find_principal,
    get_context,
    same_secret,
)
from audiencesync.control.context import Context
from audiencesync.control.permissions import Action, Actor, allowed
from audiencesync.control.zones import viewer_zone
from audiencesync.errors import AudiencesyncError, PermissionDeniedError
from audiencesync.sync.exports import KIND_WORDS
from audiencesync.sync.schedule import Sentence, when_words
from audiencesync.wording import field_label, for_web

HERE = Path(__file__).parent
#: what a page shows as a form's error: a sentence, or a service error (its field marked).
FormError: TypeAlias = str | AudiencesyncError | None
templates = Jinja2Templates(directory=HERE / "templates")


@pass_context
def _when(context: TemplateContext, value: datetime | Sentence | None) -> str:
    """Every time a page shows, in the signed-in user's zone (UTC when they chose none),
    with the zone's short name: "2026-12-07 14:05 CET". A schedule ``Sentence`` keeps
    its own zone for the cron and says its next time so too."""
    user = context.get("user")
    zone = viewer_zone(user.time_zone if isinstance(user, Actor) else None)
    if isinstance(value, Sentence):
        return value.in_zone(zone)
    return when_words(value, zone)


def _number(value: object) -> str:
    if isinstance(value, int | float):
        return f"{value:,}"
    return "—" if value is None else str(value)


def _total(value: object) -> int:
    if isinstance(value, dict):
        return sum(int(v) for v in value.values() if isinstance(v, int | float))
    return int(value) if isinstance(value, int | float) else 0


templates.env.filters["when"] = _when
templates.env.filters["number"] = _number
templates.env.filters["total"] = _total
templates.env.globals["field_label"] = field_label
templates.env.filters["kind_words"] = lambda kind: KIND_WORDS.get(str(kind), str(kind))
templates.env.filters["q"] = lambda value: quote(str(value), safe="")


class LoginRequiredError(Exception):
    """The page needs a signed-in user; answered with a redirect to the sign-in page."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


@dataclass(frozen=True)
class Page:
    """A signed-in browser on a page: the context, the user, their session."""

    ctx: Context
    principal: Principal

    @property
    def actor(self) -> Actor:
        return self.principal.actor

    @property
    def session(self) -> SessionInfo:
        assert self.principal.session is not None
        return self.principal.session

    def flash(self, message: str, *, kind: str = "info") -> None:
        """A message shown once on the next page; ``kind`` is info or error."""
        self.session.data.setdefault("flash", []).append({"text": message, "kind": kind})
        save_session_data(self.ctx, self.session)


def _page(request: Request) -> Page:
    principal = find_principal(request)
    if principal is None or principal.session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequiredError(target)
    return Page(get_context(request), principal)


def current_page(request: Request) -> Page:
    """The signed-in user of a page, or a redirect to the sign-in page."""
    return _page(request)


@dataclass(frozen=True)
class Posted(Page):
    """A submitted form whose CSRF token matched the session's."""

    form: FormData = field(default_factory=FormData)

    def text(self, key: str, default: str = "") -> str:
        value = self.form.get(key)
        return value.strip() if isinstance(value, str) else default

    def optional(self, key: str) -> str | None:
        return self.text(key) or None

    def flag(self, key: str) -> bool:
        return self.text(key).lower() in ("on", "true", "1", "yes")

    def texts(self, key: str) -> list[str]:
        return [v.strip() for v in self.form.getlist(key) if isinstance(v, str) and v.strip()]

    def file(self, key: str) -> UploadFile | None:
        value = self.form.get(key)
        if isinstance(value, UploadFile) and value.filename:
            return value
        return None

    def values(self) -> dict[str, str]:
        """The form's text fields (to fill a form again after an error)."""
        return {k: v for k, v in self.form.items() if isinstance(v, str) and k != "csrf_token"}


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another site."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin != "null"
    parts = urlsplit(origin)
    return parts.netloc == request.headers.get("host", request.url.netloc)


async def posted_form(request: Request) -> AsyncIterator[Posted]:
    """The form of a POST, after checking its CSRF token against the session's.

    Uploaded files of the form are closed once the page is done with them.
    """
    page = await run_in_threadpool(_page, request)
    form = await request.form()
    try:
        sent = form.get("csrf_token") or request.headers.get(CSRF_HEADER, "")
        if (
            not isinstance(sent, str)
            or not same_secret(sent, page.session.csrf_token)
            or not same_origin(request)
        ):
            raise PermissionDeniedError(
                "this form is out of date or came from another site: reload the page and try again."
            )
        yield Posted(page.ctx, page.principal, form)
    finally:
        await form.close()


CurrentPage = Annotated[Page, Depends(current_page)]
Form = Annotated[Posted, Depends(posted_form)]


def can(actor: Actor) -> dict[str, bool]:
    """What the user's role allows, so pages show no button that would fail."""
    return {
        "manage_users": allowed(actor, Action.MANAGE_USERS),
        "manage_schedule": allowed(actor, Action.MANAGE_SCHEDULE),
        "manage_connections": allowed(actor, Action.MANAGE_CONNECTIONS),
        "manage_sources": allowed(actor, Action.MANAGE_SOURCES),
        "edit_datasets": allowed(actor, Action.EDIT_DATASETS),
        "edit_segments": allowed(actor, Action.EDIT_SEGMENTS),
        "edit_exports": allowed(actor, Action.EDIT_EXPORTS),
        "manage_privacy": allowed(actor, Action.MANAGE_PRIVACY),
    }


def render(
    request: Request, page: Page, template: str, *, status: int = 200, **context: Any
) -> HTMLResponse:
    """A page of the signed-in user, with the messages waiting for them."""
    error = context.get("error")
    if isinstance(error, AudiencesyncError):
        # The sentence in the web's words; the form shows it next to its field.
        context["error"] = for_web(error)
        context.setdefault("error_field", error.field)
    messages: list[dict[str, str]] = []
    if not context.get("fragment", False):
        messages = list(page.session.data.pop("flash", []))
        if messages:
            save_session_data(page.ctx, page.session)
    return templates.TemplateResponse(
        request,
        template,
        {
            "user": page.actor,
            "csrf": page.session.csrf_token,
            "can": can(page.actor),
            "messages": messages,
            **context,
        },
        status_code=status,
    )


def redirect(url: str) -> Response:
    """See other: after a form, the browser loads ``url`` with GET."""
    return RedirectResponse(url, status_code=303)
