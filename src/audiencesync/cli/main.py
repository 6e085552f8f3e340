"""The ``audiencesync`` program: nouns, then verbs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from audiencesync import __version__
from audiencesync.cli import (
    alerts,
    audit_cmd,
    bench,
    connections,
    demo,
    emulator,
    exports,
    identifiers,
    privacy,
    profiles,
    runs,
    segments,
    serve,
    sources,
    try_cmd,
    users,
)
from audiencesync.cli.common import err_console, state
from audiencesync.errors import AudiencesyncError
from audiencesync.logs import configure_logging
from audiencesync.wording import for_cli

app = typer.Typer(
    name="audiencesync",
    help="Keep Snapchat customer-list audiences in step with your own customer segments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"audiencesync {__version__}")
        raise typer.Exit


@app.callback()
def _global(
    acting_as: Annotated[
        str | None,
        typer.Option(
            "--as", help="Act as this user (default: AUDIENCESYNC_USER, else the first admin)."
        ),
    ] = None,
    home: Annotated[
        Path | None, typer.Option("--home", help="Home folder (default: AUDIENCESYNC_HOME).")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log progress to stderr.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Keep Snapchat customer-list audiences in step with your own customer segments."""
    state.acting_as = acting_as
    settings = state.get_settings()
    if home is not None:
        state.settings = settings.model_copy(update={"home": home})
    configure_logging("INFO" if verbose else state.get_settings().log_level)


app.command("init", help="Create the home folder and control database, and the first admin.")(
    users.init
)
app.add_typer(users.app, name="users")
app.add_typer(sources.app, name="sources")
app.add_typer(profiles.app, name="profiles")
app.add_typer(segments.app, name="segments")
app.command("audit", help="Show who changed what, newest first.")(audit_cmd.audit)
app.command("emulator", help="Run a local Snapchat Marketing API for tests and demos.")(
    emulator.run
)
app.add_typer(connections.app, name="connections")
app.add_typer(exports.app, name="exports")
app.add_typer(runs.app, name="runs")
app.add_typer(alerts.app, name="alerts")
app.add_typer(serve.schedule_app, name="schedule")
app.command("try", help="Start the emulator and the web UI on a sample home, to try it out.")(
    try_cmd.try_it
)
app.command("serve", help="Run the web UI and REST API, the scheduler and a worker.")(serve.serve)
app.command("worker", help="Run queued export runs (several share a PostgreSQL database).")(
    serve.worker
)
app.add_typer(identifiers.app, name="identifiers")
app.add_typer(privacy.app, name="privacy")
app.command("bench", help="Time a full and an incremental run on the emulator (JSON).")(bench.bench)
app.command("demo", help="Run the whole path on synthetic profiles in a temporary home.")(demo.demo)


def main() -> None:
    """Run the program; a user's mistake ends in one sentence on stderr, not a traceback."""
    try:
        app()
    except AudiencesyncError as error:
        err_console.print(f"error: {for_cli(error)}", markup=False)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted.")
        sys.exit(130)
