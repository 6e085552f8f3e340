"""The seed's flow from the command line, as a new user would run it, on the emulator."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from audiencesync.control.context import Context
from audiencesync.emulator.testing import EmulatorHandle, running_emulator
from audiencesync.settings import Settings
from audiencesync.sync.destinations import load_tokens
from tests.cli_runner import CliResult, run_cli

PASSWORD = "a long enough password\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def emulator() -> Iterator[EmulatorHandle]:
    with running_emulator() as handle:
        yield handle


@pytest.fixture
def env(emulator: EmulatorHandle) -> dict[str, str]:
    return {
        "AUDIENCESYNC_SNAPCHAT_API_URL": emulator.api_url,
        "AUDIENCESYNC_SNAPCHAT_AUTH_URL": emulator.auth_url,
        "AUDIENCESYNC_SNAPCHAT_CLIENT_ID": emulator.client_id,
        "AUDIENCESYNC_SNAPCHAT_CLIENT_SECRET": emulator.client_secret,
        "AUDIENCESYNC_SNAPCHAT_REDIRECT_URI": f"http://127.0.0.1:{free_port()}/oauth/callback",
    }


def add_connection(home: Path, env: dict[str, str], *args: str) -> CliResult:
    """Run `connections add-snapchat` and play the browser: open the printed URL."""
    import os

    environment = {k: v for k, v in os.environ.items() if not k.startswith("AUDIENCESYNC_")}
    environment.update(env, AUDIENCESYNC_HOME=str(home), COLUMNS="200")
    process = subprocess.Popen(
        [sys.executable, "-m", "audiencesync", "connections", "add-snapchat", *args,
         "--no-browser", "--timeout", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, env=environment,
    )  # fmt: skip
    assert process.stdout is not None
    url = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if line.startswith("http"):
            url = line.strip()
            break
    if url:
        # The user's browser: the emulator approves and redirects to the CLI's loopback.
        answer = httpx.get(url, follow_redirects=True, timeout=30)
        assert answer.status_code == 200, answer.text
        assert "You can close this window" in answer.text
    out, err = process.communicate(timeout=60)
    return CliResult(process.returncode, out, err)


def test_connection_and_exports_as_a_new_user_would(
    tmp_path: Path, emulator: EmulatorHandle, env: dict[str, str]
) -> None:
    home = tmp_path / "home"
    assert run_cli("init", "--password-stdin", home=home, input_text=PASSWORD, env=env).code == 0
    assert run_cli("users", "add", "carol", "--role", "contributor", "--password-stdin",
                   home=home, input_text=PASSWORD, env=env).code == 0  # fmt: skip

    refused = add_connection(home, env, "Snapchat")
    assert refused.code != 0
    assert "needs your agreement to the data privacy" in refused.stderr
    assert "Data privacy and compliance" in refused.stderr  # the text was shown

    made = add_connection(home, env, "Snapchat", "--share-with-contributors", "--agree")
    assert made.code == 0, made.output
    assert "Saved connection 'Snapchat'" in made.stdout
    assert "Export user: admin." in made.stdout
    shown = run_cli("connections", "show", "Snapchat", home=home, env=env)
    assert emulator.ad_account_id in shown.stdout
    assert "consent: by admin" in shown.stdout
    assert "administrators and contributors" in shown.stdout

    source = tmp_path / "customers.csv"
    source.write_text("id,email,country\n1,a@example.com,US\n2,B@Example.com ,GB\n3,nope,GB\n")
    assert run_cli("profiles", "import", str(source), "--key", "id", home=home, env=env).code == 0
    rules = tmp_path / "gb.yaml"
    rules.write_text("field: country\nop: '='\nvalue: GB\n")
    made_segment = run_cli("--as", "carol", "segments", "create", "gb", "--dataset", "customers",
                           "--rules", str(rules), home=home, env=env)  # fmt: skip
    assert made_segment.code == 0, made_segment.output

    audience = str(emulator.create_segment_directly("Existing list")["id"])
    existing = run_cli("--as", "carol", "exports", "add", "to-existing", "--connection", "Snapchat",
                       "--audience-id", audience, "--email-field", "email", "--segment", "gb",
                       home=home, env=env)  # fmt: skip
    assert existing.code == 0, existing.output
    assert "Not run yet" in existing.stdout
    assert emulator.members(audience, "EMAIL_SHA256") == set()

    created = run_cli("exports", "add", "to-new", "--connection", "Snapchat", "--create-audience",
                      "--audience-name", "From audiencesync", "--email-field", "email",
                      "--segment", "gb", "--mode", "add-only", home=home, env=env)  # fmt: skip
    assert created.code == 0, created.output
    listed = run_cli("exports", "list", home=home, env=env).stdout
    assert "to-existing" in listed
    assert "to-new" in listed

    ran = run_cli("--as", "carol", "exports", "run", "to-existing", home=home, env=env)
    assert ran.code == 0, ran.output
    assert "succeeded" in ran.stdout
    assert "not_an_email 1" in ran.stdout
    assert re.search(r"time: members and hashing \d+\.\d\ds, planning", ran.stdout)
    assert len(emulator.members(audience, "EMAIL_SHA256")) == 1

    wrong = run_cli("exports", "add", "x", "--connection", "Snapchat", "--audience-id", "12345",
                    "--email-field", "email", "--segment", "gb", home=home, env=env)  # fmt: skip
    assert wrong.code == 2
    assert wrong.stderr.startswith("error: Snapchat has no audience 12345")
    # A list no export uses yet, so the column mistake is what the save stops on.
    spare = str(emulator.create_segment_directly("Spare list")["id"])
    missing = run_cli("exports", "add", "x", "--connection", "Snapchat", "--audience-id", spare,
                      "--email-field", "mail", "--segment", "gb", home=home, env=env)  # fmt: skip
    assert "is not a column of dataset 'customers'" in missing.stderr
    assert "Traceback" not in wrong.output + missing.output

    detached = run_cli("connections", "remove", "Snapchat", "--detach", home=home, env=env)
    assert "Detached, now inactive: to-existing, to-new." in detached.stdout
    rerun = run_cli("exports", "run", "to-existing", home=home, env=env)
    assert "has no connection (it was detached)" in rerun.stderr


def test_secrets_never_reach_the_database_file_logs_or_output(
    tmp_path: Path, emulator: EmulatorHandle, env: dict[str, str]
) -> None:
    home = tmp_path / "home"
    run_cli("init", "--password-stdin", home=home, input_text=PASSWORD, env=env)
    made = add_connection(home, env, "Snapchat", "--agree")
    assert made.code == 0, made.output
    ctx = Context.open(Settings(home=home))
    stored = load_tokens(ctx, 1)
    ctx.close()
    tokens = [stored.access_token, stored.refresh_token]
    verbose = run_cli("-v", "connections", "show", "Snapchat", home=home, env=env)
    outputs = made.output + verbose.output
    raw = (home / "control.db").read_bytes() + b"".join(
        p.read_bytes() for p in home.glob("control.db*") if p.is_file()
    )
    assert emulator.client_secret not in outputs
    assert emulator.client_secret.encode() not in raw
    for token in tokens:
        assert token not in outputs
        assert token.encode() not in raw
