"""Fixtures: the web app served over real HTTP on loopback, wired to a running emulator.

Every response any client of these tests receives is recorded; after each test the
bodies and headers are searched for the OAuth client secret, every Snapchat token the
emulator issued, password hashes and API tokens (outside the one response that creates
a token): none may ever appear. The sentences of every response (JSON error and message
fields, the visible text of pages) are searched for command-line flags and commands:
the web and the API name fields and buttons, never ``--flags`` (tests/cli_words.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from audiencesync.api import auth
from audiencesync.control.context import Context
from audiencesync.control.models import Role
from audiencesync.control.permissions import Actor
from audiencesync.emulator.server import bind, url_of
from audiencesync.emulator.testing import EmulatorHandle, running_emulator
from audiencesync.settings import Settings
from audiencesync.web.app import create_app
from tests.cli_words import cli_words_in_response
from tests.conftest import _initialised, make_actors
from tests.snap_helpers import emulator_settings, load_profiles


class AppServer:
    """``create_app`` served by uvicorn from a daemon thread."""

    def __init__(self, ctx: Context) -> None:
        self.sock = bind("127.0.0.1", 0)
        self.url = url_of(self.sock)
        config = uvicorn.Config(
            create_app(ctx.settings, context=ctx), log_config=None, access_log=False,
            lifespan="on", proxy_headers=False,  # as `serve` runs it
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert self.thread.is_alive(), "the app server stopped while starting"
            assert time.monotonic() < deadline, "the app server did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()


@dataclass
class Recorder:
    """Every response the test's clients received, and the API tokens handed out."""

    responses: list[tuple[str, str]] = field(default_factory=list)
    created_tokens: set[str] = field(default_factory=set)

    cli_words: list[tuple[str, list[str]]] = field(default_factory=list)

    def hook(self, response: httpx.Response) -> None:
        response.read()
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        self.responses.append((str(response.request.url), headers + "\n" + response.text))
        url = str(response.request.url)
        found = cli_words_in_response(url, response.headers.get("content-type", ""), response.text)
        if found:
            self.cli_words.append((f"{response.request.method} {url}", found))


@dataclass
class Api:
    """The served app, its home, and HTTP clients for each role."""

    url: str
    ctx: Context
    emulator: EmulatorHandle
    actors: dict[Role, Actor]
    recorder: Recorder
    clients: dict[Role, httpx.Client] = field(default_factory=dict)
    tmp_path: Path = Path()

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        kwargs.setdefault("follow_redirects", False)
        return httpx.Client(
            base_url=self.url, headers=headers, timeout=60,
            event_hooks={"response": [self.recorder.hook]}, **kwargs,
        )  # fmt: skip

    def client_for(self, actor: Actor) -> httpx.Client:
        created = auth.create_token(self.ctx, actor, "tests")
        self.recorder.created_tokens.add(created.token)
        return self.client(created.token)

    @property
    def admin(self) -> httpx.Client:
        return self.clients[Role.ADMIN]

    @property
    def contributor(self) -> httpx.Client:
        return self.clients[Role.CONTRIBUTOR]

    @property
    def viewer(self) -> httpx.Client:
        return self.clients[Role.VIEWER]


@pytest.fixture
def emulator() -> Iterator[EmulatorHandle]:
    with running_emulator() as handle:
        yield handle


@pytest.fixture
def ctx(settings: Settings, emulator: EmulatorHandle) -> Iterator[Context]:
    """An initialised home pointed at the emulator, on SQLite and on PostgreSQL."""
    context = _initialised(emulator_settings(settings, emulator))
    yield context
    context.close()


def _secrets(ctx: Context, emulator: EmulatorHandle) -> set[str]:
    found = {emulator.client_secret}
    store = emulator.emulator.store if emulator.emulator is not None else None
    if store is not None:
        found |= set(store.access_tokens) | set(store.refresh_tokens)
    secret_key = ctx.settings.secret_key
    if secret_key is not None:
        found.add(secret_key.get_secret_value())
    return found


@pytest.fixture
def api(ctx: Context, emulator: EmulatorHandle, tmp_path: Path) -> Iterator[Api]:
    """The app served on loopback; clients of admin, carol (contributor), victor (viewer)."""
    actors = make_actors(ctx)
    server = AppServer(ctx)
    recorder = Recorder()
    harness = Api(server.url, ctx, emulator, actors, recorder, tmp_path=tmp_path)
    harness.clients = {role: harness.client_for(actor) for role, actor in actors.items()}
    try:
        yield harness
    finally:
        for client in harness.clients.values():
            client.close()
        server.stop()
    assert not recorder.cli_words, (
        f"command-line words in what the web or API said: {recorder.cli_words}"
    )
    leaked = _secrets(ctx, emulator)
    for url, text in recorder.responses:
        for secret in leaked:
            assert secret not in text, f"a secret appeared in the response of {url}"
        assert "$argon2" not in text, f"a password hash appeared in the response of {url}"
        if not url.endswith("/api/v1/me/tokens"):
            for token in recorder.created_tokens:
                assert token not in text, f"an API token appeared in the response of {url}"


@pytest.fixture
def profiles(api: Api) -> Api:
    """Dataset ``customers`` and segments ``everyone`` and ``gb`` (made by the admin).

    The file lies in a folder the server may read (AUDIENCESYNC_IMPORT_FOLDERS), as a
    refresh through the API or web reads the recorded path only there (docs/sources.md).
    """
    folders = api.ctx.settings.import_folder_paths
    if folders:
        folder = folders[0]
    else:
        folder = api.tmp_path
        api.ctx.settings = api.ctx.settings.model_copy(update={"import_folders": str(folder)})
    load_profiles(api.ctx, api.actors[Role.ADMIN], folder)
    return api


def connect_via_api(
    api: Api, name: str = "Snap", *, share: bool = False, client: httpx.Client | None = None
) -> dict[str, Any]:
    """Add a Snapchat connection through the API, the emulator approving at once."""
    client = client or api.admin
    started = client.post("/api/v1/connections/authorizations", json={})
    assert started.status_code == 201, started.text
    body = started.json()
    # The browser: the emulator (auto-approve) redirects to the API's callback.
    with api.client(follow_redirects=True) as browser:
        landed = browser.get(body["authorization_url"])
    assert landed.status_code == 200, landed.text
    created = client.post(
        "/api/v1/connections",
        json={"name": name, "share_with_contributors": share, "agree": True,
              "state": body["state"]},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    result: dict[str, Any] = created.json()
    return result


def add_export_via_api(
    api: Api, client: httpx.Client, name: str = "weekly", connection: str = "Snap", **extra: Any
) -> httpx.Response:
    body = {
        "name": name, "connection": connection, "segments": ["everyone"],
        "email_field": "email", "create_audience": True, **extra,
    }  # fmt: skip
    return client.post("/api/v1/exports", json=body)
