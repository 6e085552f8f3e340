"""The foundation from the command line, as a new user meets it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli_runner import run_cli

PASSWORD = "a long enough password\n"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    result = run_cli("init", "--password-stdin", home=home, input_text=PASSWORD)
    assert result.code == 0, result.output
    assert "administrator 'admin' created" in result.stdout
    return home


def test_init_never_invents_a_password(tmp_path: Path) -> None:
    result = run_cli("init", home=tmp_path / "h", input_text="")
    assert result.code != 0
    assert result.stderr.startswith("error: a password is needed")
    assert "Traceback" not in result.output


def test_init_takes_the_password_from_the_environment(tmp_path: Path) -> None:
    home = tmp_path / "h"
    result = run_cli("init", home=home, env={"AUDIENCESYNC_ADMIN_PASSWORD": "from the env var"})
    assert result.code == 0, result.output
    again = run_cli("init", home=home)
    assert again.code == 0
    assert "already set up" in again.stdout


def test_commands_before_init_say_to_run_init(tmp_path: Path) -> None:
    result = run_cli("profiles", "list", home=tmp_path / "nothing")
    assert result.code != 0
    assert "run `audiencesync init` first" in result.stderr
    assert "Traceback" not in result.output


def test_users_and_roles_from_the_cli(home: Path) -> None:
    added = run_cli("users", "add", "carol", "--role", "contributor", "--password-stdin",
                    home=home, input_text=PASSWORD)  # fmt: skip
    assert added.code == 0, added.output
    run_cli("users", "add", "victor", "--role", "viewer", "--password-stdin",
            home=home, input_text=PASSWORD)  # fmt: skip
    listed = run_cli("users", "list", home=home)
    assert "carol" in listed.stdout
    assert "contributor" in listed.stdout

    denied = run_cli("--as", "carol", "users", "add", "eve", "--role", "admin", "--password-stdin",
                     home=home, input_text=PASSWORD)  # fmt: skip
    assert denied.code != 0
    assert denied.stderr.strip() == (
        "error: carol is a contributor and cannot manage users; ask a user with the admin role."
    )
    env_denied = run_cli("users", "remove", "carol", home=home, env={"AUDIENCESYNC_USER": "victor"})
    assert "victor is a viewer and cannot manage users" in env_denied.stderr

    assert run_cli("users", "set-role", "carol", "viewer", home=home).code == 0
    assert run_cli("users", "remove", "carol", home=home).code == 0
    audit = run_cli("audit", home=home)
    assert "user.remove" in audit.stdout
    assert "user.set_role" in audit.stdout


def test_profiles_from_the_cli(home: Path, tmp_path: Path) -> None:
    source = tmp_path / "customers.csv"
    source.write_text("customer_id,email,age\n1,a@example.com,30\n2,b@example.com,40\n")
    imported = run_cli("profiles", "import", str(source), "--key", "customer_id", home=home)
    assert imported.code == 0, imported.output
    assert "Imported 2 profiles into dataset 'customers'" in imported.stdout
    assert "customers" in run_cli("profiles", "list", home=home).stdout
    schema = run_cli("profiles", "schema", "customers", home=home).stdout
    assert "customer_id" in schema
    assert "BIGINT" in schema
    assert "b@example.com" in run_cli("profiles", "show", "customers", home=home).stdout

    bad = run_cli("profiles", "import", str(source), "--key", "customerid", home=home)
    assert bad.code == 2
    assert bad.stderr.strip() == (
        "error: customers.csv has no column 'customerid' to use as the key: "
        "did you mean customer_id."
    )
    unlike = run_cli("profiles", "import", str(source), "--key", "zzz", home=home)
    assert "columns are customer_id, email, age." in unlike.stderr
    source.write_text("customer_id,email,age\n3,c@example.com,50\n")
    assert run_cli("profiles", "refresh", home=home).code == 0
    assert "c@example.com" in run_cli("profiles", "show", "customers", home=home).stdout
    assert run_cli("profiles", "remove", "customers", home=home).code == 0


def _all_commands() -> list[list[str]]:
    """Every command path of the program, from its click tree."""
    import typer.main

    from audiencesync.cli.main import app

    found: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        found.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


COMMANDS = _all_commands()


def test_the_command_tree_is_complete() -> None:
    names = {" ".join(c) for c in COMMANDS}
    for expected in ("init", "users add", "profiles import", "segments create",
                     "connections add-snapchat", "exports add", "exports run", "runs list",
                     "identifiers hash", "emulator", "serve", "worker", "demo", "bench",
                     "audit", "schedule set"):  # fmt: skip
        assert expected in names


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_says_what_it_does(command: list[str]) -> None:
    from typer.testing import CliRunner

    from audiencesync.cli.main import app

    result = CliRunner().invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    usage, _, rest = result.output.partition("\n\n")
    assert usage.strip().startswith("Usage: ")
    description = " ".join(rest.strip().split("\n\n")[0].split())
    assert description.endswith(".")
    assert len(description) > 10


def test_a_password_set_from_the_cli_revokes_api_tokens(home: Path) -> None:
    from audiencesync.api.auth import actor_for_token, create_token
    from audiencesync.control.context import Context
    from audiencesync.control.users import resolve_actor
    from audiencesync.settings import Settings

    ctx = Context.open(Settings(home=home))
    try:
        token = create_token(ctx, resolve_actor(ctx, "admin"), "script").token
        assert actor_for_token(ctx, token) is not None
        changed = run_cli("users", "set-password", "admin", "--password-stdin",
                          home=home, input_text="another long password\n")  # fmt: skip
        assert changed.code == 0, changed.output
        assert "API tokens are revoked" in changed.stdout
        assert actor_for_token(ctx, token) is None
    finally:
        ctx.close()


def test_time_zones_from_the_cli(home: Path) -> None:
    run_cli("users", "add", "victor", "--role", "viewer", "--password-stdin",
            home=home, input_text=PASSWORD)  # fmt: skip
    own = run_cli("--as", "victor", "users", "set-time-zone", "victor", "europe/paris", home=home)
    assert own.code == 0, own.output
    assert own.stdout.strip() == "Web pages show victor times in Europe/Paris."
    listed = run_cli("users", "list", "--json", home=home)
    zones = {u["name"]: u["time_zone"] for u in json.loads(listed.stdout)}
    assert zones == {"admin": None, "victor": "Europe/Paris"}

    wrong = run_cli("users", "set-time-zone", "victor", "Mars/Base", home=home)
    assert wrong.code != 0
    assert wrong.stderr.strip() == (
        "error: 'Mars/Base' is not a time zone: give time_zone an IANA name such as "
        "Europe/Paris, America/New_York or UTC, or leave it empty for UTC."
    )
    denied = run_cli("--as", "victor", "users", "set-time-zone", "admin", "UTC", home=home)
    assert "victor is a viewer and cannot manage users" in denied.stderr
    back = run_cli("users", "set-time-zone", "victor", "", home=home)
    assert back.stdout.strip() == "Web pages show victor times in UTC (no zone chosen)."
