"""A real browser against ``audiencesync serve`` and the emulator, both on loopback.

Chromium is Debian's (``/usr/bin/chromium``, installed by ``.ci/run``), driven by the
``playwright`` Python package; no browser is downloaded. Without either the tests skip
with a reason, unless AUDIENCESYNC_TEST_REQUIRE_BROWSER=1 (CI), where they fail.
Screenshots of every step go to ``test-output/browser/``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from audiencesync.control.context import Context
from audiencesync.emulator.testing import EmulatorProcess, start_emulator_process
from audiencesync.settings import Settings
from tests.conftest import PASSWORD, _initialised

CHROMIUM = Path(os.environ.get("AUDIENCESYNC_TEST_CHROMIUM", "/usr/bin/chromium"))
REQUIRE_BROWSER = os.environ.get("AUDIENCESYNC_TEST_REQUIRE_BROWSER") == "1"
SCREENSHOTS = Path(__file__).resolve().parents[3] / "test-output" / "browser"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def _browser_missing() -> str | None:
    if not CHROMIUM.exists():
        return (
            f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium; "
            ".ci/run does it; AUDIENCESYNC_TEST_CHROMIUM names another binary) and the "
            "playwright package"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return (
            "browser tests need the playwright Python package (make installs it with "
            "'.[dev]'); Chromium itself comes from Debian, never from 'playwright install'"
        )
    return None


@pytest.fixture(scope="session", autouse=True)
def _need_browser() -> None:
    reason = _browser_missing()
    if reason is None:
        return
    if REQUIRE_BROWSER:
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Stack:
    """The emulator, the served app and the home they share."""

    url: str
    emulator: EmulatorProcess
    settings: Settings
    home: Path
    log: Path

    def open_context(self) -> Context:
        return Context.open(self.settings)


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"audiencesync serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/login", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"audiencesync serve did not answer within 60 s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """``audiencesync emulator`` (approval page on) and ``audiencesync serve``, in processes."""
    root = tmp_path_factory.mktemp("browser")
    # The approval page is shown (no --auto-approve): the browser clicks Approve.
    emulator = start_emulator_process("--allow-loopback-redirects", "--processing-seconds", "0")
    server: subprocess.Popen[bytes] | None = None
    try:
        settings = Settings(
            home=root / "home",
            database_url=None,
            secret_key=None,
            user=None,
            snapchat_api_url=emulator.api_url,
            snapchat_auth_url=emulator.auth_url,
            snapchat_client_id=emulator.client_id,
            snapchat_client_secret=SecretStr(emulator.client_secret),
        )
        _initialised(settings).close()
        port = free_port()
        env = {
            **os.environ,
            "AUDIENCESYNC_HOME": str(settings.home),
            "AUDIENCESYNC_SNAPCHAT_API_URL": emulator.api_url,
            "AUDIENCESYNC_SNAPCHAT_AUTH_URL": emulator.auth_url,
            "AUDIENCESYNC_SNAPCHAT_CLIENT_ID": emulator.client_id,
            "AUDIENCESYNC_SNAPCHAT_CLIENT_SECRET": emulator.client_secret,
            "AUDIENCESYNC_HTTP_BACKOFF_BASE_SECONDS": "0.01",
        }
        env.pop("AUDIENCESYNC_DATABASE_URL", None)
        log = root / "serve.log"
        with log.open("wb") as output:
            server = subprocess.Popen(
                [sys.executable, "-m", "audiencesync", "serve", "--host", "127.0.0.1",
                 "--port", str(port)],
                env=env, stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        _wait_until_up(url, server, log)
        yield Stack(url, emulator, settings, settings.home, log)
        # Every error a user met was a page in plain words, never a server traceback.
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        emulator.stop()


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class User:
    """One person in their own browser context: signs in, clicks, takes screenshots."""

    def __init__(self, browser: Any, stack: Stack, name: str) -> None:
        self.stack = stack
        self.name = name
        self.context = browser.new_context(
            base_url=stack.url, viewport={"width": 1280, "height": 900}
        )
        self.context.set_default_timeout(15_000)
        self.page = self.context.new_page()
        self.page.on("dialog", lambda dialog: dialog.accept())
        self.console_errors: list[str] = []
        self.page.on("console", self._console)

    def _console(self, message: Any) -> None:
        # Errors of our pages only (the emulator's page has no favicon, and that is fine).
        where = (message.location or {}).get("url", "")
        if message.type == "error" and where.startswith(self.stack.url):
            self.console_errors.append(f"{where}: {message.text}")

    def sign_in(self, password: str = PASSWORD) -> None:
        self.page.goto("/login")
        self.page.fill("#name", self.name)
        self.page.fill("#password", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_selector("#account-link")

    def shot(self, step: str) -> None:
        self.page.screenshot(path=str(SCREENSHOTS / f"{step}.png"), full_page=True)

    def close(self) -> None:
        """End the browser context, keeping a picture of where it stopped."""
        try:
            self.shot(f"last-page-of-{self.name}")
        finally:
            self.context.close()
