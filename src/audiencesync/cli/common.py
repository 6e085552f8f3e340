"""What every command shares: settings, the opened home, the acting user, output."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.rule import Rule

from audiencesync.control.context import Context
from audiencesync.control.permissions import Actor
from audiencesync.control.users import resolve_actor
from audiencesync.errors import UserInputError
from audiencesync.settings import Settings, load_settings

#: Output that is not a terminal (a pipe, a file, a script) is never cut to 80 columns:
#: tables there are as wide as their content (COLUMNS still wins when set).
_PIPE_WIDTH = 10_000


def _width(stream: object) -> int | None:
    if os.environ.get("COLUMNS") or (hasattr(stream, "isatty") and stream.isatty()):
        return None
    return _PIPE_WIDTH


console = Console(highlight=False, soft_wrap=True, width=_width(sys.stdout))
err_console = Console(stderr=True, highlight=False, soft_wrap=True, width=_width(sys.stderr))


def rule(title: str) -> None:
    """A section line: as wide as the terminal, and 80 columns in a pipe or a file (a
    rule has no content to fit, unlike the tables there)."""
    console.print(Rule(title), width=min(console.width, 80))


JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print the same JSON as the REST API instead of text."),
]


def print_json(data: BaseModel | Sequence[BaseModel]) -> None:
    """Print an API model (or a list of them) exactly as the REST API serializes it.

    The ``--json`` output of every ``list`` and ``show`` command goes through here, built
    from the API's own models (``api/models.py``), so scripts read the same fields from
    the command line as from the API.
    """
    if isinstance(data, BaseModel):
        payload: object = data.model_dump(mode="json")
    else:
        payload = [item.model_dump(mode="json") for item in data]
    sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@dataclass
class CliState:
    """Global options, set by the top-level callback."""

    acting_as: str | None = None
    settings: Settings | None = field(default=None)

    def get_settings(self) -> Settings:
        if self.settings is None:
            self.settings = load_settings()
        return self.settings


state = CliState()


@contextmanager
def opened(*, migrate: bool = True) -> Iterator[Context]:
    """The home folder opened (and migrated when needed) for one command."""
    ctx = Context.open(state.get_settings(), migrate=migrate)
    try:
        yield ctx
    finally:
        ctx.close()


def actor(ctx: Context) -> Actor:
    """The user this command acts as: --as, else AUDIENCESYNC_USER, else the first admin."""
    return resolve_actor(ctx, state.acting_as or state.get_settings().user)


def read_password(*, from_stdin: bool, env_var: str | None, prompt: str) -> str:
    """A password from stdin (one line), an environment variable, or a hidden prompt."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise UserInputError("no password on standard input: pipe one line holding it.")
        return password
    if env_var and os.environ.get(env_var):
        return os.environ[env_var]
    if not sys.stdin.isatty():
        hint = f", set {env_var}" if env_var else ""
        raise UserInputError(
            f"a password is needed: pass --password-stdin and pipe it{hint}, "
            "or run the command in a terminal to be prompted."
        )
    prompted: str = typer.prompt(prompt, hide_input=True, confirmation_prompt=True)
    return prompted
