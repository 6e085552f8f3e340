"""``audiencesync init`` and ``audiencesync users ...``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from audiencesync.api.models import UserPublic
from audiencesync.cli.common import (
    JsonOption,
    actor,
    console,
    opened,
    print_json,
    read_password,
    state,
)
from audiencesync.control import users as service
from audiencesync.control.db import Database
from audiencesync.control.permissions import Action, require

app = typer.Typer(help="Manage users and their roles (administrators only).", no_args_is_help=True)

PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]


def init(
    admin: Annotated[
        str, typer.Option("--admin", help="Name of the first administrator.")
    ] = "admin",
    password_stdin: PasswordStdin = False,
) -> None:
    """Create the home folder and control database, and the first administrator."""
    settings = state.get_settings()
    settings.resolved_home.mkdir(parents=True, exist_ok=True)
    (settings.resolved_home / "profiles").mkdir(exist_ok=True)
    db = Database(settings.control_database_url)
    try:
        db.migrate()
    finally:
        db.dispose()
    with opened() as ctx:
        _ = ctx.secrets  # creates the key file when no AUDIENCESYNC_SECRET_KEY is set
        if service.has_users(ctx):
            console.print(
                f"audiencesync is already set up in {settings.resolved_home}; schema is current."
            )
            return
        password = read_password(
            from_stdin=password_stdin,
            env_var="AUDIENCESYNC_ADMIN_PASSWORD",
            prompt=f"Password for {admin}",
        )
        service.create_first_admin(ctx, admin, password)
    console.print(f"Set up {settings.resolved_home}; administrator {admin!r} created.")


@app.command("add")
def add(
    name: str,
    role: Annotated[str, typer.Option("--role", help="admin, contributor or viewer.")],
    password_stdin: PasswordStdin = False,
) -> None:
    """Add a user with a role."""
    parsed = service.parse_role(role)
    with opened() as ctx:
        who = actor(ctx)
        require(who, Action.MANAGE_USERS)  # before asking for a password nobody would use
        password = read_password(
            from_stdin=password_stdin, env_var=None, prompt=f"Password for {name}"
        )
        service.add_user(ctx, who, name, parsed, password)
    console.print(f"Added {name} ({parsed.value}).")


@app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """List users and their roles."""
    with opened() as ctx:
        rows = service.list_users(ctx, actor(ctx))
    if as_json:
        print_json([UserPublic.of(v) for v in rows])
        return
    table = Table("name", "role", "created (UTC)", "time zone")
    for user in rows:
        table.add_row(
            user.name, user.role.value, user.created_at.strftime("%Y-%m-%d %H:%M"),
            user.time_zone or "UTC (none chosen)",
        )  # fmt: skip
    console.print(table)


@app.command("set-role")
def set_role(name: str, role: str) -> None:
    """Change a user's role."""
    parsed = service.parse_role(role)
    with opened() as ctx:
        service.set_role(ctx, actor(ctx), name, parsed)
    console.print(f"{name} is now {parsed.value}.")


@app.command("set-time-zone")
def set_time_zone(
    name: str,
    zone: Annotated[
        str, typer.Argument(help="An IANA time zone such as Europe/Paris; '' for UTC.")
    ],
) -> None:
    """Set the time zone web pages show a user times in (yours, or anyone's as an
    administrator). The command line and the API always say times in UTC."""
    with opened() as ctx:
        view = service.set_time_zone(ctx, actor(ctx), name, zone)
    shown = view.time_zone or "UTC (no zone chosen)"
    console.print(f"Web pages show {name} times in {shown}.")


@app.command("set-password")
def set_password(name: str, password_stdin: PasswordStdin = False) -> None:
    """Change a password (your own, or anyone's as an administrator)."""
    with opened() as ctx:
        who = actor(ctx)
        if name != who.name:
            require(who, Action.MANAGE_USERS)
        password = read_password(
            from_stdin=password_stdin, env_var=None, prompt=f"New password for {name}"
        )
        service.set_password(ctx, who, name, password)  # ends their sessions and tokens
    console.print(f"Password of {name} changed; their web sessions and API tokens are revoked.")


@app.command("remove")
def remove(name: str) -> None:
    """Remove a user."""
    with opened() as ctx:
        service.remove_user(ctx, actor(ctx), name)
    console.print(f"Removed {name}.")
