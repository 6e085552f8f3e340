"""Your account: your time zone; change your password; create and revoke your API tokens."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from audiencesync.api import auth
from audiencesync.api.deps import RecordId, client_address
from audiencesync.control import users
from audiencesync.control.zones import zone_names
from audiencesync.errors import AudiencesyncError, UserInputError
from audiencesync.web.common import CurrentPage, Form, FormError, Page, redirect, render

router = APIRouter()


def _account(
    request: Request,
    page: Page,
    *,
    error: FormError = None,
    new_token: str | None = None,
    status: int = 200,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    """The account page; ``values`` fill the token form again after an error (passwords
    are never written back into a page)."""
    return render(
        request, page, "account.html",
        tokens=auth.list_tokens(page.ctx, page.actor), error=error, new_token=new_token,
        status=status, nav="account", zones=zone_names(), values=values or {},
    )  # fmt: skip


@router.get("/account")
def account(request: Request, page: CurrentPage) -> Response:
    return _account(request, page)


@router.post("/account/time-zone")
def set_time_zone(request: Request, page: Form) -> Response:
    """The zone every page shows you times in; empty: UTC."""
    try:
        view = users.set_time_zone(page.ctx, page.actor, page.actor.name, page.text("time_zone"))
    except AudiencesyncError as error:
        return _account(request, page, error=error, status=error.http_status)
    page.flash(f"Times are now shown in {view.time_zone or 'UTC'}.")
    return redirect("/account")


@router.post("/account/password")
def change_password(request: Request, page: Form) -> Response:
    """Your current password, then the new one twice; your other sessions and tokens end."""
    password = page.form.get("password")
    if password != page.form.get("confirm"):
        differ = UserInputError("the two passwords differ: type them again.", field="confirm")
        return _account(request, page, error=differ, status=differ.http_status)
    current = page.form.get("current_password")
    try:
        auth.check_current_password(
            page.ctx, page.actor, current if isinstance(current, str) else "",
            address=client_address(request),
        )  # fmt: skip
        users.set_password(
            page.ctx, page.actor, page.actor.name, str(password or ""),
            keep_session=page.session.id_hash,
        )  # fmt: skip
    except AudiencesyncError as error:
        return _account(request, page, error=error, status=error.http_status)
    page.flash(
        "Your password was changed: your other sessions were signed out and your API tokens "
        "revoked."
    )
    return redirect("/account")


def expiry_days(text: str) -> int | None:
    """The form's "expires after (days)": empty is never, else a whole number of days.

    Anything else ("30 days", "1.5", "-1") is refused rather than read as "never".
    """
    if not text:
        return None
    if not re.fullmatch(r"[0-9]+", text):
        raise UserInputError(
            f"{text!r} is not a number of days: give a whole number such as 30, or leave it "
            "empty for a token that never expires.",
            field="expires_in_days",
        )
    significant = text.lstrip("0") or "0"
    if len(significant) > len(str(auth.MAX_TOKEN_DAYS)):
        # int() refuses thousands of digits; any number this long is out of range anyway.
        raise UserInputError(auth.TOKEN_DAYS_RANGE, field="expires_in_days")
    return int(significant)


@router.post("/account/tokens")
def create_token(request: Request, page: Form) -> Response:
    try:
        created = auth.create_token(
            page.ctx, page.actor, page.text("name"),
            expires_in_days=expiry_days(page.text("expires_in_days")),
        )  # fmt: skip
    except AudiencesyncError as error:
        values = {"name": page.text("name"), "expires_in_days": page.text("expires_in_days")}
        return _account(request, page, error=error, status=error.http_status, values=values)
    return _account(request, page, new_token=created.token)


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(page: Form, token_id: RecordId) -> Response:
    auth.revoke_token(page.ctx, page.actor, token_id)
    page.flash("The token was revoked: it no longer works.")
    return redirect("/account")
