"""``audiencesync connections ...``: the Snapchat connection, by OAuth, with consent."""

from __future__ import annotations

import os
import sys
import webbrowser
from typing import Annotated

import typer
from rich.table import Table

from audiencesync.api.models import ConnectionPublic
from audiencesync.cli.common import JsonOption, actor, console, err_console, opened, print_json
from audiencesync.cli.oauth_callback import CallbackServer
from audiencesync.control.context import Context
from audiencesync.control.permissions import Action, Actor, require
from audiencesync.destinations.snapchat.oauth import TokenSet
from audiencesync.sync import connections as service
from audiencesync.sync.consent import CONSENT_VERSION, PRIVACY_TEXT

app = typer.Typer(
    help="Connect audiencesync to Snapchat (administrators only).", no_args_is_help=True
)

NoBrowser = Annotated[
    bool, typer.Option("--no-browser", help="Print the sign-in URL without opening a browser.")
]
Timeout = Annotated[
    float, typer.Option("--timeout", help="Seconds to wait for the Snapchat sign-in.")
]


def _sign_in(ctx: Context, who: Actor, *, no_browser: bool, timeout: float) -> TokenSet:
    """Authenticate with Snapchat: print the URL, catch the loopback redirect, exchange."""
    authorization = service.start_authorization(ctx, who)
    with CallbackServer(authorization.redirect_uri) as server:
        console.print("Authenticate with Snapchat: open this address and approve the access:")
        print(authorization.url, flush=True)  # noqa: T201 - plain line a script can read
        if not no_browser and (os.environ.get("DISPLAY") or sys.platform == "darwin"):
            webbrowser.open(authorization.url)
        callback = server.wait(timeout)
    return service.finish_authorization(
        ctx, who, authorization, code=callback.code, state=callback.state
    )


@app.command("add-snapchat")
def add_snapchat(
    name: Annotated[str, typer.Argument(help="Display name of the connection.")],
    share_with_contributors: Annotated[
        bool,
        typer.Option(
            "--share-with-contributors",
            help="Let contributors use it for exports (default: administrators only).",
        ),
    ] = False,
    agree: Annotated[
        bool, typer.Option("--agree", help="Agree to the data privacy and compliance text.")
    ] = False,
    no_browser: NoBrowser = False,
    timeout: Timeout = 300.0,
) -> None:
    """Add a Snapchat connection: consent, Snapchat sign-in, you as export user, save."""
    with opened() as ctx:
        who = actor(ctx)
        require(who, Action.MANAGE_CONNECTIONS)
        name = service.check_new_name(ctx, who, name)  # before the sign-in, not after it
        err_console.print(PRIVACY_TEXT, markup=False)
        if not agree and sys.stdin.isatty():
            agree = typer.confirm("I agree", default=False)
        service.check_consent(agree)
        console.print(f"Consent recorded for {who.name} (text version {CONSENT_VERSION}).")
        tokens = _sign_in(ctx, who, no_browser=no_browser, timeout=timeout)
        view = service.create_snapchat_connection(
            ctx, who, name, share_with_contributors=share_with_contributors,
            agreed=agree, tokens=tokens,
        )  # fmt: skip
    console.print(f"Export user: {view.export_user}.")
    console.print(
        f"Saved connection {view.name!r} to Snapchat user {view.platform_user_name!r} "
        f"({len(view.ad_accounts)} ad account(s)); usable by "
        + (
            "administrators and contributors."
            if view.shared_with_contributors
            else "administrators."
        )
    )


@app.command("reauth")
def reauth(name: str, no_browser: NoBrowser = False, timeout: Timeout = 300.0) -> None:
    """Sign in to Snapchat again for a connection (after a revoked or expired grant)."""
    with opened() as ctx:
        who = actor(ctx)
        require(who, Action.MANAGE_CONNECTIONS)
        service.get_connection(ctx, who, name)
        tokens = _sign_in(ctx, who, no_browser=no_browser, timeout=timeout)
        view = service.reauthenticate(ctx, who, name, tokens)
    console.print(f"Connection {view.name!r} re-authenticated; status {view.status}.")


@app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """List the connections you may see."""
    with opened() as ctx:
        views = service.list_connections(ctx, actor(ctx))
    if as_json:
        print_json([ConnectionPublic.of(v) for v in views])
        return
    table = Table("name", "type", "usable by", "status", "Snapchat user", "exports")
    for v in views:
        if not v.full:
            table.add_row(v.name, v.type, "", "", "", "")
            continue
        usable = "admins, contributors" if v.shared_with_contributors else "admins"
        table.add_row(
            v.name, v.type, usable, v.status or "", v.platform_user_name or "", ", ".join(v.exports)
        )
    console.print(table)


@app.command("show")
def show(name: str, as_json: JsonOption = False) -> None:
    """Show a connection (administrators see all fields but secrets)."""
    with opened() as ctx:
        v = service.get_connection(ctx, actor(ctx), name)
    if as_json:
        print_json(ConnectionPublic.of(v))
        return
    console.print(f"name: {v.name}\ntype: {v.type}")
    if not v.full:
        return
    usable = "administrators and contributors" if v.shared_with_contributors else "administrators"
    lines = [
        f"usable by: {usable}",
        f"status: {v.status}",
        f"export user: {v.export_user}",
        f"consent: by {v.consent_by} at {v.consent_at:%Y-%m-%d %H:%M} UTC "
        f"(text version {v.consent_version})",
        f"Snapchat user: {v.platform_user_name}",
        f"organizations: {', '.join(v.organization_ids)}",
        "ad accounts: " + ", ".join(f"{a.name} ({a.id})" for a in v.ad_accounts),
        f"authenticated: {v.authenticated_at:%Y-%m-%d %H:%M} UTC",
        f"exports: {', '.join(v.exports) or 'none'}",
    ]
    console.print("\n".join(lines), markup=False)


@app.command("audiences")
def audiences(
    name: str,
    search: Annotated[
        str | None, typer.Option("--search", help="Part of the name, or the id.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List the customer lists the connection's ad accounts hold (to pick --audience-id)."""
    from audiencesync.api.models import AudienceChoicePublic
    from audiencesync.sync import choices

    with opened() as ctx:
        found = choices.list_audiences(ctx, actor(ctx), name, search=search)
    if as_json:
        print_json([AudienceChoicePublic.of(a) for a in found])
        return
    table = Table("id", "name", "ad account", "matched users", "used by")
    for a in found:
        users = f"{a.approximate_number_users:,}" if a.approximate_number_users is not None else ""
        table.add_row(a.id, a.name, a.ad_account_name, users, a.used_by or "free")
    console.print(table)


@app.command("set-access")
def set_access(
    name: str,
    share_with_contributors: Annotated[
        bool,
        typer.Option(
            "--share-with-contributors/--admins-only",
            help="Who can use the connection for exports.",
        ),
    ],
) -> None:
    """Choose who can use a connection (existing exports keep working)."""
    with opened() as ctx:
        service.set_access(ctx, actor(ctx), name, share_with_contributors=share_with_contributors)
    who = "administrators and contributors" if share_with_contributors else "administrators only"
    console.print(f"Connection {name!r} is now usable by {who}.")


@app.command("remove")
def remove(
    name: str,
    detach: Annotated[
        bool, typer.Option("--detach", help="Keep its exports, inactive, without a connection.")
    ] = False,
) -> None:
    """Remove a connection and its tokens."""
    with opened() as ctx:
        detached = service.remove_connection(ctx, actor(ctx), name, detach=detach)
    console.print(f"Removed connection {name!r}.")
    if detached:
        console.print(f"Detached, now inactive: {', '.join(detached)}.")
