"""The seed flow on an emulator whose access tokens live 5 seconds (issue 12).

Less than the 120 s refresh margin: every command refreshes, Snap's rule rotates the
refresh token each time, and the connection must still work from command to command.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from audiencesync.emulator.testing import EmulatorProcess, start_emulator_process
from tests.cli_runner import run_cli
from tests.e2e.test_cli_seed_flow import PASSWORD, add_connection, free_port


@pytest.fixture
def emulator() -> Iterator[EmulatorProcess]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AUDIENCESYNC_")}
    with start_emulator_process(
        "--token-ttl", "5", "--auto-approve", "--allow-loopback-redirects",
        "--processing-seconds", "0", env=environment,
    ) as handle:  # fmt: skip
        yield handle


def test_connect_add_an_export_and_run_twice_with_five_second_tokens(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    env = {
        "AUDIENCESYNC_SNAPCHAT_API_URL": emulator.api_url,
        "AUDIENCESYNC_SNAPCHAT_AUTH_URL": emulator.auth_url,
        "AUDIENCESYNC_SNAPCHAT_CLIENT_ID": emulator.client_id,
        "AUDIENCESYNC_SNAPCHAT_CLIENT_SECRET": emulator.client_secret,
        "AUDIENCESYNC_SNAPCHAT_REDIRECT_URI": f"http://127.0.0.1:{free_port()}/oauth/callback",
    }
    assert emulator.state()["settings"]["token_ttl"] == 5
    home = tmp_path / "home"
    outputs: list[str] = []
    started = time.monotonic()

    def cli(*args: str) -> str:
        result = run_cli(*args, home=home, env=env)
        outputs.append(result.output)
        assert result.code == 0, result.output
        return result.stdout

    assert run_cli("init", "--password-stdin", home=home, input_text=PASSWORD, env=env).code == 0
    made = add_connection(home, env, "Snapchat", "--agree")
    outputs.append(made.output)
    assert made.code == 0, made.output
    assert "Saved connection 'Snapchat'" in made.stdout

    source = tmp_path / "customers.csv"
    source.write_text(
        "id,email,phone,country\n"
        "1,a@example.com,+44 7700 900123,GB\n"
        "2,B@Example.com ,0044 7700 900124,GB\n"
        "3,nope,07700 900125,GB\n"
    )
    cli("profiles", "import", str(source), "--key", "id")
    rules = tmp_path / "gb.yaml"
    rules.write_text("field: country\nop: '='\nvalue: GB\n")
    cli("segments", "create", "gb", "--dataset", "customers", "--rules", str(rules))
    cli(
        "exports", "add", "to-new", "--connection", "Snapchat", "--create-audience",
        "--audience-name", "From audiencesync", "--email-field", "email",
        "--phone-field", "phone", "--segment", "gb",
        # The second file drops half the people: not what this test is about (the guard).
        "--max-removal-share", "1",
    )  # fmt: skip

    first = cli("exports", "run", "to-new")
    assert "succeeded" in first
    # Whatever the clock did meanwhile, the next command finds its access token expired.
    emulator.expire_tokens()
    source.write_text(
        "id,email,phone,country\n"
        "1,a@example.com,+44 7700 900123,GB\n"
        "4,d@example.com,+44 7700 900126,GB\n"
    )
    cli("profiles", "import", str(source), "--key", "id")
    second = cli("exports", "run", "to-new")
    assert "succeeded" in second

    shown = cli("connections", "show", "Snapchat")
    assert "needs" not in shown.lower()
    (segment,) = [s for s in emulator.state()["segments"] if s["name"] == "From audiencesync"]
    audience = str(segment["id"])
    assert len(emulator.members(audience, "EMAIL_SHA256")) == 2  # a@ and d@
    assert len(emulator.members(audience, "PHONE_SHA256")) == 2  # +44 ...123 and ...126
    text = "\n".join(outputs).lower()
    assert "reauth" not in text
    assert "re-authenticat" not in text
    assert "invalid_grant" not in text
    # Refreshed about once per command (each starts with an expired token) and once per
    # half-lifetime within one, not before every call.
    counts = emulator.request_counts()
    token_calls = counts.pop("oauth_token")
    assert set(token_calls) == {"200"}  # no refresh was refused
    refreshes = token_calls["200"] - 1  # the first was the code exchange
    api_calls = sum(sum(by_status.values()) for by_status in counts.values())
    elapsed = time.monotonic() - started
    assert refreshes <= 3 + elapsed / 2.5, (refreshes, elapsed)
    assert refreshes < api_calls / 2, (refreshes, api_calls)
