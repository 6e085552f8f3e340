"""``audiencesync alerts ...``: alert channels (email, webhooks) and their deliveries."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from audiencesync.cli.common import actor, console, opened
from audiencesync.errors import UserInputError
from audiencesync.notify import DeliveryError
from audiencesync.sync import alerts as service

app = typer.Typer(
    help="Where alerts go: email over SMTP, webhooks (administrators only).",
    no_args_is_help=True,
)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON (the API's fields).")]


def channel_fields(view: service.ChannelView) -> dict[str, Any]:
    """A channel as the API shows it."""
    return {
        "name": view.name,
        "scheme": view.scheme,
        "host": view.host,
        "display": view.display,
        "exports": list(view.exports),
        "created_by": view.created_by,
        "created_at": view.created_at.isoformat(),
    }


def delivery_fields(view: service.DeliveryView) -> dict[str, Any]:
    """A delivery as the API shows it."""
    return {
        "id": view.id,
        "channel": view.channel,
        "event": view.event,
        "export": view.export,
        "run_id": view.run_id,
        "title": view.title,
        "body": view.body,
        "status": view.status,
        "attempts": view.attempts,
        "error": view.error,
        "created_at": view.created_at.isoformat(),
        "finished_at": view.finished_at.isoformat() if view.finished_at else None,
    }


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Name exports use to pick this channel.")],
    url: Annotated[
        str,
        typer.Argument(
            help="Notification URL in apprise's syntax (json://host:port/path, "
            "mailtos://user:password@smtp.host?to=ADDRESS, slack://..., workflows://...); "
            "'-' reads it from standard input, out of the shell's history."
        ),
    ],
) -> None:
    """Add a channel; its URL is stored encrypted and shown as scheme and host only."""
    if url == "-":
        url = sys.stdin.readline().strip()
        if not url:
            raise UserInputError("no URL on standard input: pipe one line holding it.")
    with opened() as ctx:
        try:
            view = service.add_channel(ctx, actor(ctx), name, url)
        except UserInputError as error:
            if error.field != "url":
                raise
            # The URL is this command's argument, not the --url option of sources.
            raise UserInputError(error.message) from None
    console.print(
        f"Added alert channel {view.name!r} ({view.display}). Send a test with "
        f"`audiencesync alerts test {view.name}`; pick it on an export with "
        f"`audiencesync exports update EXPORT --alert {view.name}`.",
        markup=False,
    )


@app.command("list")
def list_(as_json: AsJson = False) -> None:
    """List channels: scheme and host, and the exports that use each."""
    with opened() as ctx:
        views = service.list_channels(ctx, actor(ctx))
    if as_json:
        _print_json([channel_fields(v) for v in views])
        return
    table = Table("name", "channel", "exports", "added by")
    for v in views:
        table.add_row(v.name, v.display, ", ".join(v.exports), v.created_by)
    console.print(table)


@app.command("test")
def test(name: str) -> None:
    """Send a test alert to a channel now (with the usual retries) and say how it went."""
    with opened() as ctx:
        view = service.test_channel(ctx, actor(ctx), name)
    if view.status != service.DELIVERED:
        raise DeliveryError(
            f"the test alert to channel {name!r} failed after {view.attempts} attempt(s): "
            f"{view.error} Check the URL (`audiencesync alerts remove {name}` and add it again)."
        )
    console.print(f"Test alert delivered to channel {name!r}.", markup=False)


@app.command("remove")
def remove(name: str) -> None:
    """Remove a channel; exports stop alerting it; past deliveries are kept."""
    with opened() as ctx:
        used_by = service.remove_channel(ctx, actor(ctx), name)
    suffix = f" (exports no longer alerting it: {', '.join(used_by)})" if used_by else ""
    console.print(f"Removed alert channel {name!r}{suffix}.", markup=False)


@app.command("deliveries")
def deliveries(
    channel: Annotated[str | None, typer.Option("--channel", help="Only this channel.")] = None,
    export: Annotated[str | None, typer.Option("--export", help="Only this export.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 20,
    as_json: AsJson = False,
) -> None:
    """Recent deliveries, newest first: event, channel, status, attempts, error."""
    with opened() as ctx:
        views = service.list_deliveries(
            ctx, actor(ctx), channel=channel, export=export, limit=limit
        )
    if as_json:
        _print_json([delivery_fields(v) for v in views])
        return
    table = Table("id", "at", "event", "export", "run", "channel", "status", "attempts", "error")
    for v in views:
        table.add_row(
            str(v.id), f"{v.created_at:%Y-%m-%d %H:%M}", v.event, v.export,
            str(v.run_id or ""), v.channel, v.status, str(v.attempts), v.error or "",
        )  # fmt: skip
    console.print(table)
