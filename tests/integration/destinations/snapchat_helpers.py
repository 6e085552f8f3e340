"""Shared pieces of the Snapchat contract tests: log in through the emulator's authorize
page, build a client with small backoff, and hook a transport to act mid-upload."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from audiencesync.destinations.snapchat import (
    OAuthApp,
    SnapchatClient,
    TokenSet,
    authorize_url,
    exchange_code,
    new_state,
    snapchat_policy,
)
from audiencesync.http import RetryPolicy

# Contract tests run at real speed on loopback: keep every wait tiny, the bounds real.
FAST = {
    "max_attempts": 12,
    "max_rate_limited_attempts": 40,
    "backoff_base_seconds": 0.01,
    "backoff_max_seconds": 0.1,
}


def fast_policy(**overrides: Any) -> RetryPolicy:
    return replace(snapchat_policy(), **{**FAST, **overrides})


def hashes(n: int, salt: str = "") -> list[str]:
    return [hashlib.sha256(f"{salt}{i}@example.com".encode()).hexdigest() for i in range(n)]


def app_of(emulator: Any) -> OAuthApp:
    return OAuthApp(
        emulator.client_id, emulator.client_secret, emulator.redirect_uri, emulator.auth_url
    )


def log_in(emulator: Any) -> TokenSet:
    """The code flow as a browser would walk it: authorize page, redirect, exchange."""
    app = app_of(emulator)
    state = new_state()
    with httpx.Client(follow_redirects=False) as browser:
        page = browser.get(authorize_url(app, state))
    assert page.status_code in (302, 303), page.text
    location = page.headers["location"]
    assert location.startswith(app.redirect_uri)
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert query["state"] == state
    return exchange_code(app, query["code"])


@dataclass
class Connection:
    """A logged-in client plus every TokenSet it handed to ``on_tokens``."""

    client: SnapchatClient
    persisted: list[TokenSet] = field(default_factory=list)


def connect(
    emulator: Any,
    *,
    transport: httpx.BaseTransport | None = None,
    policy: RetryPolicy | None = None,
    **kwargs: Any,
) -> Connection:
    persisted: list[TokenSet] = []
    lock = threading.Lock()

    def on_tokens(tokens: TokenSet) -> None:
        with lock:
            persisted.append(tokens)

    client = SnapchatClient(
        emulator.api_url,
        app_of(emulator),
        log_in(emulator),
        on_tokens,
        policy=policy or fast_policy(),
        transport=transport,
        connection_name="snap-test",
        **kwargs,
    )
    return Connection(client, persisted)


class HookedTransport(httpx.BaseTransport):
    """Real HTTP, with a callback before each request (to expire tokens mid-upload)."""

    def __init__(self, before: Callable[[httpx.Request], None]) -> None:
        self._inner = httpx.HTTPTransport()
        self._before = before

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._before(request)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()
