"""What every command shares: settings, the opened home, the acting user, output."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import typer
from rich.console import Console

from audiencesync.control.context import Context
from audiencesync.control.permissions import Actor
from audiencesync.control.users import resolve_actor
from audiencesync.errors import UserInputError
from audiencesync.settings import Settings, load_settings

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


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
