"""A newcomer's first minute: `audiencesync try` (what `make try` and `make serve` run with
no Snapchat app configured), then sign in, connect to the emulator and import the example
file in a real browser, with no flag and no environment set by hand."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from audiencesync.emulator.testing import EmulatorHandle
from tests.cli_words import cli_words_in_response
from tests.e2e.browser.conftest import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, User, free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPOSITORY = Path(__file__).resolve().parents[3]


@dataclass
class TryServer:
    url: str
    password: str
    home: Path
    output: str


def _wait_for(process: subprocess.Popen[bytes], log: Path, wanted: str) -> str:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        text = log.read_text(encoding="utf-8")
        if wanted in text:
            return text
        if process.poll() is not None:
            raise RuntimeError(f"audiencesync try exited: {text}")
        time.sleep(0.2)
    raise RuntimeError(f"audiencesync try did not start within 90 s: {log.read_text()}")


@pytest.fixture(scope="module")
def try_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TryServer]:
    root = tmp_path_factory.mktemp("try")
    home, log = root / "home", root / "try.log"
    port = free_port()
    # A fresh clone's environment: no AUDIENCESYNC_* setting at all.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIENCESYNC_")}
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "audiencesync", "try", "--home", str(home),
             "--port", str(port)],
            cwd=REPOSITORY, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,  # its emulator child is stopped with it, even if killed
        )  # fmt: skip
    try:
        text = _wait_for(process, log, "audiencesync on http")
        password = re.search(r"as admin, password (\S+)", text)
        assert password, text
        yield TryServer(f"http://127.0.0.1:{port}", password.group(1), home, text)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # whatever of the group is left
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


@pytest.fixture(scope="module")
def chromium(try_server: TryServer) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


VIEWER_PASSWORD = "viewer-password-1"


def _cli(try_server: TryServer, *args: str, stdin: str = "") -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIENCESYNC_")}
    env["AUDIENCESYNC_HOME"] = str(try_server.home)
    done = subprocess.run(
        [sys.executable, "-m", "audiencesync", *args], input=stdin.encode(), env=env,
        cwd=REPOSITORY, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


class Walk:
    """A newcomer's browser, checking every page it sees for command-line words."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.page = user.page
        self.dialogs: list[str] = []
        self.page.on("dialog", lambda dialog: self.dialogs.append(dialog.message))
        self.seen: list[tuple[str, list[str]]] = []
        self.page.on("load", lambda _page: self.scan())

    def scan(self) -> None:
        words = cli_words_in_response(self.page.url, "text/html", self.page.content())
        if words:
            self.seen.append((self.page.url, words))
        crumbs = self.page.locator("p.crumbs")
        if crumbs.count():
            assert not crumbs.first.inner_text().rstrip().endswith("›"), self.page.url


def _numbers(text: str) -> int:
    return int(re.sub(r"[^0-9]", "", text))


def test_first_hour_from_try_to_an_audience_picked_from_the_list(
    chromium: Any, try_server: TryServer
) -> None:
    """Sign in, connect, import the example, make a segment, pick an audience from the
    list Snapchat (the emulator) holds, save, run and see its size: no flag, no env."""
    from playwright.sync_api import expect

    started = time.monotonic()
    admin = User(chromium, try_server, "admin")  # type: ignore[arg-type]
    walk = Walk(admin)
    example = REPOSITORY / "examples" / "customers.csv"
    try:
        admin.sign_in(try_server.password)
        page = admin.page
        # 1. Connect: the display name is checked, then the emulator's own sign-in page.
        page.goto("/connections")
        page.click("#add-connection")
        assert page.locator("#privacy-text").inner_text().count("Data privacy and compliance") == 0
        assert page.locator("h2:has-text('Data privacy and compliance')").count() == 1
        page.fill("#display-name", "Snapchat (emulator)")
        page.check("#agree")
        page.click("#authenticate")
        page.wait_for_selector("#approve")
        admin.shot("try-1-emulator-authorize")
        page.click("#approve")
        page.wait_for_selector("#authenticated")
        # After the sign-in, what the connection reaches: organization and ad account.
        reached = page.inner_text("#reached-accounts")
        assert "Emulated Ad Account" in reached
        admin.shot("try-2-reached")
        page.check("#export-user")
        page.click("#save-connection")
        page.wait_for_selector("article.connection[data-name='Snapchat (emulator)']")
        # A taken name is refused before Snapchat, next to the name field.
        page.click("#add-connection")
        page.fill("#display-name", "Snapchat (emulator)")
        page.check("#agree")
        page.click("#authenticate")
        page.wait_for_selector("#form-error[data-field=name]")
        assert "already exists" in page.inner_text("#form-error")
        assert page.url.endswith("/connections/new")
        admin.shot("try-3-name-taken")
        # The refused form answers 409 on purpose; Chromium logs every 4xx as an error.
        admin.console_errors[:] = [e for e in admin.console_errors if "409" not in e]
        # 2. The example file the Quickstart and the try banner name.
        assert str(example) in try_server.output
        page.goto("/profiles")
        page.set_input_files("#file", str(example))
        page.fill("#key", "customer_id")
        page.fill("#name", "customers")
        page.click("form[action='/profiles/import'] button[type=submit]")
        page.wait_for_selector("#sample")
        lines = example.read_text(encoding="utf-8").splitlines()
        assert f"Imported {len(lines) - 1:,} profiles" in page.content()
        # 3. A segment with the rule builder: country = GB.
        page.goto("/segments/new")
        page.fill("#segment-name", "uk")
        page.select_option("select[name='r.0.field']", "country")
        page.select_option("select[name='r.0.op']", "=")
        page.fill("input[name='r.0.value']", "GB")
        page.click("#save-segment")
        page.wait_for_selector("#explain-total")
        header = lines[0].split(",")
        uk = sum(1 for line in lines[1:] if line.split(",")[header.index("country")] == "GB")
        assert _numbers(page.inner_text("#explain-total")) == uk
        assert "—" not in page.inner_text("#segment-size")  # no "— (—)" next to a count
        admin.shot("try-4-segment")
        # 4. The export: the only connection preselected, fields mapped by name, the
        # audiences of the ad account listed (customer lists only), searched, picked.
        page.goto("/exports/new")
        assert page.input_value("#connection") == "Snapchat (emulator)"
        assert page.input_value("#email_field") == "email"
        assert page.input_value("#phone_field") == "phone"
        assert page.input_value("#maid_field") == "mobile_ad_id"
        assert "Mobile ad id" in page.inner_text("#data-matching")
        assert "maid" not in page.inner_text("#data-matching").lower().replace("maid_field", "")
        preview = page.locator("#field-preview tr[data-kind=email]")
        assert "@example.com" in preview.inner_text()
        listed = page.locator("#audiences tbody tr").all_inner_texts()
        assert any("UK customers" in row for row in listed), listed
        assert any("Newsletter subscribers" in row for row in listed), listed
        assert not any("Lookalike" in row for row in listed), listed
        page.fill("#audience-search", "news")
        expect(page.locator("#audiences tbody tr")).to_have_count(1)
        assert "Newsletter subscribers" in page.inner_text("#audiences")
        page.fill("#audience-search", "uk")
        expect(page.locator("#audiences")).not_to_contain_text("Newsletter")
        expect(page.locator("#audiences tbody tr")).to_have_count(1)
        assert "UK customers" in page.inner_text("#audiences")
        page.locator("#audiences tbody tr input[type=radio]").check()
        page.fill("#export-name", "uk-weekly")
        page.check("#segment-choices input[value=uk]")
        page.fill("#cron", "0 3 * * 1")  # not chosen: the export follows the system refresh
        page.wait_for_selector("#cron-words:has-text('Monday')")
        admin.shot("try-5-export-form")
        page.click("#save-export")
        page.wait_for_selector("#export-actions")
        assert "UK customers" in page.inner_text("dl.facts")
        # 5. Schedules in words: the system refresh is off (the default).
        assert page.inner_text("#schedule-words").startswith("off: the system refresh is off")
        # 6. Run and see the size; the figure against the emulator's own count.
        page.click("#run-now")
        page.wait_for_selector("tr.run[data-status=succeeded]", timeout=30_000)
        page.reload()
        emulator_url = re.search(r"Snapchat emulator on (\S+)", try_server.output)
        assert emulator_url
        emulator = EmulatorHandle(emulator_url.group(1))
        try:
            audience = page.inner_text("dl.facts code").strip()
            held = sum(emulator.member_counts(audience).values())
        finally:
            emulator.close()
        assert held > 0
        assert _numbers(page.inner_text("#identifiers-held").split("confirmed")[0]) == held
        row = page.locator("tr.run").first
        assert _numbers(row.locator("td.num").nth(1).inner_text()) == uk  # members
        # Numbers sit under right-aligned headers.
        align = page.eval_on_selector("#run-history th.num", "el => getComputedStyle(el).textAlign")
        assert align == "right"
        admin.shot("try-6-ran")
        # 7. Risky actions ask first, naming what happens.
        page.click("#export-actions summary")
        page.click("#full-run")
        page.wait_for_selector("tr.run >> nth=1")
        assert any(f"{held:,} identifiers" in d for d in walk.dialogs), walk.dialogs
        # 8. The audit log speaks in names, with a field diff.
        page.goto("/audit?target=export:uk-weekly")
        assert "Snapchat (emulator)" in page.inner_text("#audit")
        assert "connection_id" not in page.inner_text("#audit")
        admin.shot("try-7-audit")
        # 9. Schedule: words, Refresh now, cron in words as typed.
        page.goto("/settings/schedule")
        assert page.inner_text("#schedule-words") == "off: the system refresh is off"
        assert page.inner_text("#last-refresh") == "never"
        page.click("button:has-text('Refresh now')")
        page.wait_for_selector("text=The system refresh ran")
        assert page.inner_text("#last-refresh") != "never"
        admin.shot("try-8-schedule")
        assert not admin.console_errors, admin.console_errors
    finally:
        admin.close()
    # A viewer sees lists, never a create form that refuses on submit.
    _cli(try_server, "users", "add", "victor", "--role", "viewer", "--password-stdin",
         stdin=VIEWER_PASSWORD + "\n")  # fmt: skip
    viewer = User(chromium, try_server, "victor")  # type: ignore[arg-type]
    try:
        viewer.sign_in(VIEWER_PASSWORD)
        for path in ("/segments/new", "/exports/new"):
            viewer.page.goto(path)
            assert viewer.page.locator("form#export-form, form#segment-form").count() == 0, path
            assert "cannot" in viewer.page.content()
        viewer.page.goto("/exports")
        assert viewer.page.locator("#add-export").count() == 0
        viewer.shot("try-9-viewer")
    finally:
        viewer.close()
    assert not walk.seen, walk.seen
    assert time.monotonic() - started < 60
