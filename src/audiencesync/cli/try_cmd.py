"""``audiencesync try``: the web UI on the local emulator, with a sample home, in one command.

A newcomer's first minute: no OAuth app to register, no environment to set. The emulator
runs as a child process keeping its state in the sample home (so a connection made today
still works tomorrow), and ``serve`` runs with the two Snapchat URLs pointed at it.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Annotated

import typer

from audiencesync.cli import serve as serve_cmd
from audiencesync.cli.common import console, state
from audiencesync.cli.walkthrough import emulator_home, open_new_home
from audiencesync.emulator.testing import EmulatorHandle, start_emulator_process
from audiencesync.errors import UserInputError
from audiencesync.settings import Settings

DEFAULT_HOME = Path(".audiencesync-try")
PASSWORD_FILE = "try-admin-password"  # noqa: S105 (a file name, not a password)
EXAMPLES = Path("examples")


def _check_port_free(host: str, port: int) -> None:
    """UserInputError when the web UI could not listen on ``host:port`` (checked before the
    emulator starts, so a busy port is one sentence rather than the server's traceback)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise UserInputError(
                    f"port {port} on {host} is already in use (another `audiencesync try` "
                    "or `serve`?): stop that, or give --port another number."
                ) from None
            raise UserInputError(
                f"cannot listen on {host}:{port} ({error.strerror}): give --host and --port "
                "of this machine."
            ) from None


def _is_initialised(home: Path) -> bool:
    return (home / PASSWORD_FILE).is_file()


def _first_admin(settings: Settings) -> str:
    """Create the sample home's administrator once; its password, kept in the home (0600)."""
    home = settings.resolved_home
    password_path = home / PASSWORD_FILE
    if _is_initialised(home):
        return password_path.read_text(encoding="utf-8").strip()
    ctx, _admin, password = open_new_home(settings)
    ctx.close()
    password_path.touch(mode=0o600)
    password_path.write_text(password + "\n", encoding="utf-8")
    return password


def _settings_to_environment(settings: Settings, client_secret: str) -> None:
    # `serve` opens the home through the CLI's settings; the environment makes the same
    # settings reach anything it starts.
    os.environ["AUDIENCESYNC_HOME"] = str(settings.resolved_home)
    os.environ["AUDIENCESYNC_SNAPCHAT_API_URL"] = settings.snapchat_api_url
    os.environ["AUDIENCESYNC_SNAPCHAT_AUTH_URL"] = settings.snapchat_auth_url
    os.environ["AUDIENCESYNC_SNAPCHAT_CLIENT_ID"] = settings.snapchat_client_id or ""
    os.environ["AUDIENCESYNC_SNAPCHAT_CLIENT_SECRET"] = client_secret
    state.settings = settings


#: customer lists the sample ad account holds, as a real one would: the export form lists
#: them to pick from (a lookalike too, which it leaves out: only customer lists can be filled).
SAMPLE_AUDIENCES = (
    ("UK customers", "FIRST_PARTY"),
    ("Newsletter subscribers", "FIRST_PARTY"),
    ("Lookalike of UK customers", "LOOKALIKE"),
)


def _sample_audiences(emulator: EmulatorHandle) -> None:
    """Seed the sample ad account's audiences once (the emulator keeps its state)."""
    if emulator.state().get("segments"):
        return
    for name, kind in SAMPLE_AUDIENCES:
        emulator.create_segment_directly(
            name, source_type=kind, description="sample audience of audiencesync try"
        )


def try_it(
    home: Annotated[
        Path, typer.Option("--home", help="Sample home folder (created on first use).")
    ] = DEFAULT_HOME,
    host: Annotated[str, typer.Option("--host", help="Address of the web UI.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port of the web UI.")] = 8000,
) -> None:
    """Start the emulator and the web UI on a sample home; sign in with the printed password."""
    home = home.resolve()
    _check_port_free(host, port)
    if home.exists() and any(home.iterdir()) and not _is_initialised(home):
        raise UserInputError(
            f"{home} is not empty and is not a sample home of `audiencesync try`: "
            "give --home a new folder."
        )
    home.mkdir(parents=True, exist_ok=True)
    emulator_state = home / "emulator-state.sqlite"
    with start_emulator_process("--state", str(emulator_state)) as emulator:
        _sample_audiences(emulator)
        settings = emulator_home(home, emulator)
        password = _first_admin(settings)
        _settings_to_environment(settings, emulator.client_secret)
        example = (EXAMPLES / "customers.csv").resolve()
        console.print(f"Snapchat emulator on {emulator.api_url} (state kept in {emulator_state})")
        console.print(f"Sign in at http://{host}:{port}/ as admin, password {password}")
        if example.is_file():
            console.print(f"Sample profiles to upload on the Profiles page: {example}")
        console.print("Ctrl-C stops both.")
        serve_cmd.serve(host=host, port=port, workers=1)
