"""Admin > Connections: the seed's "Add connection > Snapchat" steps, re-authenticate, remove.

1. display name and who can use it; 2. the privacy text and "I agree"; 3. "Authenticate
with Snapchat": off to Snapchat's authorize page and back to ``/connections/callback``,
whose ``state`` must be the one this browser session started; 4. "Add yourself as export
user"; 5. Save. The tokens wait, encrypted, in the control database between 3 and 5.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from audiencesync.api import auth
from audiencesync.api.deps import same_secret
from audiencesync.control.permissions import Action, require
from audiencesync.errors import AudiencesyncError, PermissionDeniedError, UserInputError
from audiencesync.sync import connections
from audiencesync.sync.consent import CONSENT_VERSION, PRIVACY_TEXT
from audiencesync.web.common import CurrentPage, Form, FormError, Page, redirect, render
from audiencesync.web.pages.signin import safe_next

router = APIRouter()
PRIVACY_HEADING = "Data privacy and compliance"
PENDING = "connection_pending"


def _list(request: Request, page: Page, *, error: FormError = None, status: int = 200) -> Response:
    return render(
        request, page, "connections.html",
        connections=connections.list_connections(page.ctx, page.actor),
        error=error, status=status, nav="connections",
    )  # fmt: skip


@router.get("/connections")
def list_connections(request: Request, page: CurrentPage) -> Response:
    return _list(request, page)


def _new_form(
    request: Request, page: Page, *, values: dict[str, str], error: FormError = None,
    status: int = 200,
) -> Response:  # fmt: skip
    return render(
        request, page, "connection_new.html", values=values,
        # The heading is the page's own: the text below it without its title line.
        privacy_text=PRIVACY_TEXT.removeprefix(PRIVACY_HEADING).lstrip("\n"),
        consent_version=CONSENT_VERSION, error=error, status=status, nav="connections",
    )  # fmt: skip


@router.get("/connections/new")
def new_connection(request: Request, page: CurrentPage) -> Response:
    require(page.actor, Action.MANAGE_CONNECTIONS)
    return _new_form(request, page, values={"access": "admins"})


def _start(request: Request, page: Page, pending: dict[str, object]) -> Response:
    callback = str(request.url_for("connection_callback"))
    authorization = auth.begin_authorization(page.ctx, page.actor, callback, channel=auth.BROWSER)
    page.session.data[PENDING] = {**pending, "state": authorization.state}
    auth.save_session_data(page.ctx, page.session)
    return redirect(authorization.url)


@router.post("/connections/new")
def authenticate(request: Request, page: Form) -> Response:
    """Steps 1 and 2 checked, then off to Snapchat (step 3)."""
    values = page.values()
    name = page.text("name")
    try:
        require(page.actor, Action.MANAGE_CONNECTIONS)
        if not name:
            raise UserInputError(
                "give the connection a display name that says what it is for.", field="name"
            )
        # Before Snapchat: a taken or invalid name is fixed here, not after the sign-in.
        name = connections.check_new_name(page.ctx, page.actor, name)
        connections.check_consent(page.flag("agree"))
        return _start(request, page, {
            "purpose": "create", "name": name,
            "share": page.text("access") == "contributors",
        })  # fmt: skip
    except AudiencesyncError as error:
        return _new_form(request, page, values=values, error=error,
                         status=error.http_status)  # fmt: skip


@router.get("/connections/callback", name="connection_callback")
def callback(request: Request, page: CurrentPage) -> Response:
    """Back from Snapchat: the state must be the one this session started.

    Also when Snapchat reports an error: a link with ``?error=`` and another state (or
    none) neither cancels this browser's sign-in nor shows its text.
    """
    pending = page.session.data.get(PENDING)
    params = request.query_params
    if not isinstance(pending, dict) or "state" not in pending:
        raise PermissionDeniedError(
            "this browser did not start a Snapchat sign-in (or it was already used): "
            "start again from Admin > Connections."
        )
    expected = str(pending["state"])
    if params.get("error"):
        sent = params.get("state", "")
        if not same_secret(sent, expected):
            raise PermissionDeniedError(
                "this answer from Snapchat is not for the sign-in this browser started: "
                "nothing was changed (this can mean a forged link)."
            )
        auth.discard(page.ctx, expected, channel=auth.BROWSER)
        page.session.data.pop(PENDING, None)
        auth.save_session_data(page.ctx, page.session)
        reason = params.get("error_description") or params["error"]
        page.flash(f"Snapchat did not grant access ({reason}): nothing was saved.", kind="error")
        return redirect("/connections")
    auth.finish_callback(
        page.ctx, code=params.get("code", ""), state=params.get("state", ""),
        channel=auth.BROWSER, expected_state=expected, actor=page.actor,
    )  # fmt: skip
    if pending.get("purpose") == "reauth":
        return _finish_reauth(page, pending)
    state = str(pending["state"])
    tokens = auth.pending_tokens(page.ctx, page.actor, state, channel=auth.BROWSER)
    account, latest = connections.reached_account(page.ctx, page.actor, tokens)
    if latest != tokens:
        auth.keep_pending_tokens(page.ctx, state, latest, channel=auth.BROWSER)
    names = dict(account.organization_names)
    page.session.data[PENDING] = {
        **pending,
        "reached": {
            "user": account.user_display_name,
            "organizations": [{"id": o, "name": names.get(o, o)} for o in account.organization_ids],
            "ad_accounts": [
                {"id": a.id, "name": a.name, "organization": names.get(a.organization_id, "")}
                for a in account.ad_accounts
            ],
        },
    }
    auth.save_session_data(page.ctx, page.session)
    return redirect("/connections/new/save")


def _finish_reauth(page: Page, pending: dict[str, object]) -> Response:
    state = str(pending["state"])
    name = str(pending["name"])
    view = connections.reauthenticate(
        page.ctx, page.actor, name,
        auth.pending_tokens(page.ctx, page.actor, state, channel=auth.BROWSER),
    )  # fmt: skip
    auth.discard(page.ctx, state, channel=auth.BROWSER)
    page.session.data.pop(PENDING, None)
    page.flash(f"Connection {view.name} was re-authenticated as {view.platform_user_name}.")
    return redirect("/connections")


def _pending(page: Page) -> dict[str, object]:
    pending = page.session.data.get(PENDING)
    if not isinstance(pending, dict) or pending.get("purpose") != "create":
        raise UserInputError(
            "there is no connection being added in this browser: start from Admin > Connections."
        )
    if not auth.tokens_ready(page.ctx, str(pending["state"]), channel=auth.BROWSER):
        raise UserInputError("authenticate with Snapchat first: approve the access, then save.")
    return pending


@router.get("/connections/new/save")
def save_form(request: Request, page: CurrentPage) -> Response:
    """Steps 4 and 5: you as export user, then Save."""
    pending = _pending(page)
    return render(request, page, "connection_save.html", pending=pending, nav="connections")


@router.post("/connections/new/save")
def save(request: Request, page: Form) -> Response:
    pending = _pending(page)
    if not page.flag("export_user"):
        return render(
            request, page, "connection_save.html", pending=pending, status=400,
            error="add yourself as export user: the connection's exports run on your behalf.",
            nav="connections",
        )  # fmt: skip
    state = str(pending["state"])
    try:
        view = connections.create_snapchat_connection(
            page.ctx, page.actor, str(pending["name"]),
            share_with_contributors=bool(pending["share"]), agreed=True,
            tokens=auth.pending_tokens(page.ctx, page.actor, state, channel=auth.BROWSER),
        )  # fmt: skip
    except AudiencesyncError as error:
        return render(
            request, page, "connection_save.html", pending=pending, error=error,
            status=error.http_status, nav="connections",
        )  # fmt: skip
    auth.discard(page.ctx, state, channel=auth.BROWSER)
    page.session.data.pop(PENDING, None)
    page.flash(
        f"Connection {view.name} was saved: Snapchat user {view.platform_user_name}, "
        f"{len(view.ad_accounts)} ad account(s)."
    )
    return redirect("/connections")


@router.post("/connections/reauth")
def reauthenticate(request: Request, page: Form) -> Response:
    name = page.text("name")
    require(page.actor, Action.MANAGE_CONNECTIONS)
    connections.get_connection(page.ctx, page.actor, name)
    return _start(request, page, {"purpose": "reauth", "name": name})


@router.post("/connections/access")
def set_access(page: Form) -> Response:
    share = page.text("access") == "contributors"
    view = connections.set_access(
        page.ctx, page.actor, page.text("name"), share_with_contributors=share
    )
    who = "administrators and contributors" if share else "administrators only"
    page.flash(f"Connection {view.name} can now be used by {who}.")
    return redirect(safe_next("/connections"))


@router.post("/connections/remove")
def remove(page: Form) -> Response:
    name = page.text("name")
    detached = connections.remove_connection(page.ctx, page.actor, name, detach=page.flag("detach"))
    extra = f"; detached export(s): {', '.join(detached)}" if detached else ""
    page.flash(f"Connection {name} was removed{extra}.")
    return redirect("/connections")
