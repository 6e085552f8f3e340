"""Run the emulator from tests, demos and benchmarks, and drive its control endpoints.

- :func:`running_emulator` serves a real HTTP server on a free loopback port from a
  thread of this process (fast; lets a test inject a clock).
- :func:`start_emulator_process` runs ``python -m audiencesync emulator`` in its own
  process (what a benchmark wants: the server does not share the client's GIL).

Both give an :class:`EmulatorHandle`.
"""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from audiencesync.emulator.app import Emulator
from audiencesync.emulator.config import EmulatorConfig
from audiencesync.emulator.server import ServerThread, bind
from audiencesync.emulator.store import SCOPE

#: The options :func:`running_emulator` changes from the CLI's defaults, for tests.
TEST_DEFAULTS: Mapping[str, Any] = {
    "port": 0,
    "auto_approve": True,
    "processing_seconds": 0.0,
    "allow_loopback_redirects": True,
}
_LISTENING = re.compile(r"listening on (\S+)")


class EmulatorHandle:
    """Where an emulator listens, its seeded ids and credentials, and its controls."""

    def __init__(self, base_url: str, *, emulator: Emulator | None = None) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=60.0)
        #: the in-process emulator (None when it runs in another process).
        self.emulator = emulator
        info = self.state()
        self.base_url: str = base_url
        self.api_url: str = base_url
        self.auth_url: str = base_url
        self.client_id: str = info["client_id"]
        self.client_secret: str = info["client_secret"]
        redirect_uris: list[str] = info["redirect_uris"]
        self.redirect_uri: str = (
            redirect_uris[0] if redirect_uris else "http://127.0.0.1/oauth/callback"
        )
        self.organization_id: str = info["organization_id"]
        self.ad_account_id: str = info["ad_account_id"]
        self.other_ad_account_id: str = info["other_ad_account_id"]
        self.user_id: str = info["user"]["id"]

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, f"/_emulator{path}", **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"emulator control {method} {path}: {response.text}")
        return response.json()

    # Inspection ------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Seeded ids, credentials, settings, faults, token counts and segments."""
        result: dict[str, Any] = self._call("GET", "/state")
        return result

    def members(self, segment_id: str, schema: str = "EMAIL_SHA256") -> set[str]:
        """The hashes (64 lowercase hex) the segment holds for ``schema``."""
        body = self._call("GET", f"/segments/{segment_id}/members", params={"schema": schema})
        return set(body["members"])

    def member_counts(self, segment_id: str) -> dict[str, int]:
        """How many hashes the segment holds, per schema."""
        counts: dict[str, int] = self._call("GET", f"/segments/{segment_id}/members")["counts"]
        return counts

    def request_counts(self) -> dict[str, dict[str, int]]:
        """Requests by kind (``add_users``, ``oauth_token``, ...) and status (``"200"``,
        ``"429"``, ``"dropped"``, ...); control calls are not counted."""
        counts: dict[str, dict[str, int]] = self._call("GET", "/requests")["counts"]
        return counts

    def request_log(self) -> list[dict[str, Any]]:
        """The last requests: kind, method, path, status, ids in the body, ms."""
        log: list[dict[str, Any]] = self._call("GET", "/requests")["log"]
        return log

    def waiting(self) -> dict[str, int]:
        """Requests the ``latency_ms`` fault holds right now, by kind."""
        held: dict[str, int] = self._call("GET", "/requests")["waiting"]
        return held

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def request_rates(self) -> list[dict[str, Any]]:
        """Per access token (a short digest): ``requests`` and ``max_in_any_second``, the
        most Ads API requests that arrived in any one second."""
        tokens: list[dict[str, Any]] = self._call("GET", "/rates")["tokens"]
        return tokens

    # Control ---------------------------------------------------------------------------

    def set_faults(self, *, clear: bool = False, **changes: Any) -> dict[str, Any]:
        """Change faults: ``fail_429``, ``fail_500``, ``fail_503``, ``drop``, ``drop_after``
        (shares), ``retry_after`` (s), ``latency_ms``, ``seed``, ``only_kinds`` (list),
        ``script`` (list of "401", "429", "500", "503", "drop", "drop_after", "pass").
        ``clear=True`` first resets every fault."""
        for name in ("only_kinds", "script"):
            if name in changes:
                changes[name] = list(changes[name])
        body = {"clear": True, **changes} if clear else changes
        result: dict[str, Any] = self._call("POST", "/faults", json=body)
        return result

    def clear_faults(self) -> None:
        self.set_faults(clear=True)

    def set_settings(self, **changes: Any) -> dict[str, Any]:
        """Change ``auto_approve``, ``token_ttl``, ``match_rate``, ``processing_seconds``,
        ``rate_limit`` or ``page_size`` while the emulator runs."""
        result: dict[str, Any] = self._call("POST", "/settings", json=changes)
        return result

    def revoke_tokens(
        self, *, access_token: str | None = None, refresh_token: str | None = None
    ) -> int:
        """Revoke one token, or (none given) every token of the user; how many."""
        body = {
            key: value
            for key, value in (("access_token", access_token), ("refresh_token", refresh_token))
            if value is not None
        }
        revoked: int = self._call("POST", "/tokens/revoke", json=body)["revoked"]
        return revoked

    def expire_tokens(self) -> int:
        """Make every access token expire now (refresh tokens keep working); how many."""
        expired: int = self._call("POST", "/tokens/expire")["expired"]
        return expired

    def create_segment_directly(
        self, name: str = "Emulator segment", *, ad_account_id: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Create a segment without a token (in any ad account); the segment as the API
        shows it (``["id"]`` is its id)."""
        body = {"name": name, "ad_account_id": ad_account_id or self.ad_account_id, **fields}
        segment: dict[str, Any] = self._call("POST", "/segments", json=body)
        return segment

    def complete_matching(self) -> int:
        """Finish every PROCESSING upload now; how many."""
        completed: int = self._call("POST", "/matching/complete")["completed"]
        return completed

    def reset(self) -> None:
        """Back to the seed, start-up settings and faults; counts cleared."""
        self._call("POST", "/reset")

    def save(self) -> bool:
        """Write the ``--state`` snapshot now; False when state is in memory only."""
        saved: bool = self._call("POST", "/save")["saved"]
        return saved

    # OAuth helpers ---------------------------------------------------------------------

    def authorize_url(self, state: str = "test-state", redirect_uri: str | None = None) -> str:
        query = urlencode(
            {
                "client_id": self.client_id,
                "redirect_uri": redirect_uri or self.redirect_uri,
                "response_type": "code",
                "scope": SCOPE,
                "state": state,
            }
        )
        return f"{self.auth_url}/login/oauth2/authorize?{query}"

    def obtain_tokens(self, redirect_uri: str | None = None) -> dict[str, Any]:
        """Walk the code flow over HTTP (approve, exchange) and return the token response."""
        redirect_uri = redirect_uri or self.redirect_uri
        approved = self._http.post(
            "/login/oauth2/authorize",
            data={
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "scope": SCOPE,
                "state": "s",
                "decision": "approve",
            },
        )
        code = parse_qs(urlsplit(approved.headers["location"]).query)["code"][0]
        exchanged = self._http.post(
            "/login/oauth2/access_token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "redirect_uri": redirect_uri,
            },
        )
        exchanged.raise_for_status()
        tokens: dict[str, Any] = exchanged.json()
        return tokens


@contextmanager
def running_emulator(**config: Any) -> Iterator[EmulatorHandle]:
    """A real emulator on a free loopback port, served from a thread, for the ``with``.

    ``config`` takes :class:`EmulatorConfig` fields and fault fields flat (``fail_429=0.2``).
    Unlike the CLI it defaults to port 0, ``auto_approve=True``, ``processing_seconds=0``
    and ``allow_loopback_redirects=True``. Raises TypeError/ValueError for a bad option.
    On exit the server stops gracefully (writing ``state_path`` if set).
    """
    emulator = Emulator(EmulatorConfig.from_options(**{**TEST_DEFAULTS, **config}))
    sock = bind(emulator.config.host, emulator.config.port)
    thread = ServerThread(emulator, sock)
    try:
        thread.start()
        handle = EmulatorHandle(thread.url, emulator=emulator)
    except BaseException:
        thread.stop()
        raise
    try:
        yield handle
    finally:
        handle.close()
        thread.stop()


class EmulatorProcess(EmulatorHandle):
    """An emulator in its own process; stop it with :meth:`stop` or a ``with`` block."""

    def __init__(
        self, process: subprocess.Popen[str], base_url: str, pump: threading.Thread
    ) -> None:
        self.process = process
        self._pump = pump
        try:
            super().__init__(base_url)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 15.0) -> int:
        """Ctrl-C the process (it writes its snapshot), kill it after ``timeout``; its
        exit code."""
        if hasattr(self, "_http"):
            self.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._pump.join(timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_emulator_process(
    *cli_args: str, timeout: float = 30.0, env: Mapping[str, str] | None = None
) -> EmulatorProcess:
    """Run ``python -m audiencesync emulator --port 0 CLI_ARGS...`` and wait until it
    listens (its first stdout line names the URL). Raises RuntimeError when it exits or
    stays silent for ``timeout`` seconds."""
    process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "audiencesync", "emulator", "--port", "0", *cli_args],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(env) if env is not None else None,
    )
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()

    def pump(stream: Any) -> None:
        # Keep reading so the child never blocks on a full pipe.
        for line in stream:
            lines.put(line)
        lines.put("")

    pumping = threading.Thread(target=pump, args=(process.stdout,), daemon=True)
    pumping.start()

    def fail(message: str) -> RuntimeError:
        process.kill()
        process.wait()
        pumping.join()
        process.stdout.close()  # type: ignore[union-attr]
        return RuntimeError(message)

    try:
        first = lines.get(timeout=timeout)
    except queue.Empty:
        raise fail(f"the emulator printed nothing within {timeout} s") from None
    found = _LISTENING.search(first)
    if found is None:
        raise fail(f"the emulator did not start: {first.strip() or 'it exited'}")
    return EmulatorProcess(process, found.group(1), pumping)
