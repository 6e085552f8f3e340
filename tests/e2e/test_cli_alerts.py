"""`audiencesync alerts ...` and `exports add --alert` as a user would run them.

The program runs in a subprocess against the emulator; alerts go over loopback to a real
webhook receiver and a real SMTP server (aiosmtpd).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from audiencesync.emulator.testing import EmulatorHandle, running_emulator
from tests.alert_receivers import Mailbox, Webhook, smtp_server, webhook_receiver
from tests.cli_runner import run_cli
from tests.e2e.test_cli_seed_flow import PASSWORD, add_connection, free_port


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
        # Retries without waiting: the CLI runs in another process, its sleep is not ours.
        "AUDIENCESYNC_ALERT_RETRY_SECONDS": "0",
    }


@pytest.fixture
def hook() -> Iterator[Webhook]:
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as box:
        yield box


def test_channels_and_export_alerts_from_the_command_line(
    tmp_path: Path, emulator: EmulatorHandle, env: dict[str, str], hook: Webhook, mailbox: Mailbox
) -> None:
    home = tmp_path / "home"

    def cli(*args: str, input_text: str | None = None) -> tuple[int, str, str]:
        done = run_cli(*args, home=home, env=env, input_text=input_text)
        assert "Traceback" not in done.output
        return done.code, done.stdout, done.stderr

    assert cli("init", "--password-stdin", input_text=PASSWORD)[0] == 0
    assert cli("users", "add", "carol", "--role", "contributor", "--password-stdin",
               input_text=PASSWORD)[0] == 0  # fmt: skip
    assert add_connection(home, env, "Snapchat", "--share-with-contributors", "--agree").code == 0
    source = tmp_path / "customers.csv"
    source.write_text("id,email\n1,a@example.com\n2,b@example.com\n")
    assert cli("profiles", "import", str(source), "--key", "id")[0] == 0
    rules = tmp_path / "all.yaml"
    rules.write_text("field: id\nop: is not null\n")
    assert cli("segments", "create", "all", "--dataset", "customers", "--rules", str(rules))[0] == 0

    code, out, _ = cli("alerts", "add", "hook", hook.url())
    assert code == 0
    assert f"json://127.0.0.1:{hook.port}" in out
    code, out, _ = cli("alerts", "add", "mail", "-", input_text=mailbox.url() + "\n")
    assert code == 0
    assert f"(mailto://127.0.0.1:{mailbox.port})" in out
    code, _, err = cli("alerts", "add", "bad", "nosuch://somewhere/x")
    assert code == 2
    assert err.startswith("error: apprise cannot send to this nosuch:// URL")
    code, _, err = cli("--as", "carol", "alerts", "list")
    assert code == 5
    assert "cannot create, change or remove connections" in err

    code, out, _ = cli("alerts", "list", "--json")
    listed = json.loads(out)
    assert [(c["name"], c["display"]) for c in listed] == [
        ("hook", f"json://127.0.0.1:{hook.port}"),
        ("mail", f"mailto://127.0.0.1:{mailbox.port}"),
    ]
    assert "ops@example.com" not in out
    assert "/hook" not in out

    code, out, _ = cli("alerts", "test", "hook")
    assert code == 0
    assert "Test alert delivered to channel 'hook'" in out
    assert [m["title"] for m in hook.messages()] == ["audiencesync: test alert"]

    audience = str(emulator.create_segment_directly("List")["id"])
    add = ("exports", "add", "main", "--connection", "Snapchat", "--audience-id", audience,
           "--email-field", "email", "--segment", "all")  # fmt: skip
    code, _, err = cli(*add, "--alert", "nope")
    assert code == 3
    assert "no alert channel named 'nope'" in err
    code, _, err = cli(*add, "--alert", "hook", "--alert-on", "run_failed,bogus")
    assert code == 2
    assert "'bogus' is not an alert event" in err
    code, out, _ = cli("--as", "carol", *add, "--alert", "hook", "--alert", "mail",
                       "--alert-on", "recovered,run_failed")  # fmt: skip
    assert code == 0, out
    assert "alerts: run_failed, recovered -> hook, mail" in out
    assert "alerts: run_failed, recovered -> hook, mail" in cli("exports", "show", "main")[1]

    emulator.revoke_tokens()
    emulator.expire_tokens()
    code, out, _ = cli("exports", "run", "main")
    assert "failed" in out
    titles = [m["title"] for m in hook.messages()]
    # needs_reauth was not chosen: only the failure is said.
    assert titles == ["audiencesync: test alert", "audiencesync: main: run failed"]
    assert [str(m["subject"]) for m in mailbox.messages] == ["audiencesync: main: run failed"]

    code, out, _ = cli("alerts", "deliveries", "--json")
    deliveries = json.loads(out)
    assert [(d["event"], d["channel"], d["status"], d["attempts"]) for d in deliveries] == [
        ("run_failed", "mail", "delivered", 1),
        ("run_failed", "hook", "delivered", 1),
        ("test", "hook", "delivered", 1),
    ]
    assert all(d["export"] == "main" for d in deliveries[:2])

    code, _, _ = cli("alerts", "add", "nobody", f"json://127.0.0.1:{free_port()}/x")
    code, _, err = cli("alerts", "test", "nobody")
    assert code != 0
    assert "failed after 3 attempt(s)" in err
    assert "/x" not in err

    code, out, _ = cli("alerts", "remove", "hook")
    assert code == 0
    assert "exports no longer alerting it: main" in out
    code, out, _ = cli("exports", "show", "main")
    assert "alerts: run_failed, recovered -> mail" in out
