"""Finding 7 of issue 13 (the low ones): a denial cannot cancel a finished sign-in;
X-Forwarded-For counts only from trusted proxies; the OpenAPI document declares the error
answers the server sends; ``serve --workers 0`` starts no worker."""

from __future__ import annotations

import threading

import pytest

from audiencesync.api.auth import forwarded_client, parse_trusted_proxies
from audiencesync.cli.serve import background_threads
from audiencesync.control.context import Context
from audiencesync.errors import UserInputError
from tests.integration.api.conftest import Api

CALLBACK = "/api/v1/connections/callback"


def test_an_anonymous_denial_does_not_cancel_a_finished_sign_in(api: Api) -> None:
    started = api.admin.post("/api/v1/connections/authorizations", json={})
    assert started.status_code == 201, started.text
    state = started.json()["state"]
    with api.client(follow_redirects=True) as browser:
        landed = browser.get(started.json()["authorization_url"])
    assert landed.status_code == 200, landed.text  # the tokens are kept for the save step
    with api.client() as anonymous:
        denied = anonymous.get(CALLBACK, params={"error": "access_denied", "state": state})
    assert denied.status_code == 403
    assert "already finished" in denied.json()["detail"]
    saved = api.admin.post(
        "/api/v1/connections",
        json={"name": "Snap", "agree": True, "state": state, "share_with_contributors": False},
    )
    assert saved.status_code == 201, saved.text


def test_a_denial_still_cancels_a_sign_in_that_is_waiting(api: Api) -> None:
    started = api.admin.post("/api/v1/connections/authorizations", json={})
    state = started.json()["state"]
    with api.client() as anonymous:
        denied = anonymous.get(CALLBACK, params={"error": "access_denied", "state": state})
    assert denied.status_code == 403
    assert "did not grant access" in denied.json()["detail"]
    saved = api.admin.post(
        "/api/v1/connections", json={"name": "Snap", "agree": True, "state": state}
    )
    assert saved.status_code == 403  # it was cancelled


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "counted"),
    [
        # No trusted proxies (the default): the header is ignored, even from loopback.
        ("127.0.0.1", "203.0.113.9", "", "127.0.0.1"),
        ("::1", "203.0.113.9", "", "::1"),
        # A peer that is not a trusted proxy cannot speak for anyone.
        ("198.51.100.7", "203.0.113.9", "127.0.0.1", "198.51.100.7"),
        # From a trusted proxy: the right-most address that is not a trusted proxy.
        ("127.0.0.1", "203.0.113.9", "127.0.0.1", "203.0.113.9"),
        ("10.0.0.2", "1.2.3.4, 203.0.113.9, 10.0.0.5", "10.0.0.0/8", "203.0.113.9"),
        ("10.0.0.2", "10.0.0.9", "10.0.0.0/8", "10.0.0.2"),
        ("127.0.0.1", None, "127.0.0.1", "127.0.0.1"),
    ],
)
def test_forwarded_for_counts_only_from_trusted_proxies(
    peer: str, forwarded: str | None, trusted: str, counted: str
) -> None:
    assert forwarded_client(peer, forwarded, trusted) == counted


def test_a_bad_trusted_proxies_setting_is_one_sentence() -> None:
    with pytest.raises(UserInputError, match="AUDIENCESYNC_TRUSTED_PROXIES holds 'proxy'"):
        parse_trusted_proxies("127.0.0.1, proxy")


def test_the_sign_in_throttle_ignores_forwarded_for_by_default(api: Api) -> None:
    from starlette.requests import Request

    from audiencesync.api.deps import client_address

    app = type("App", (), {"state": type("State", (), {"ctx": api.ctx})()})()
    scope = {
        "type": "http", "method": "POST", "path": "/login", "app": app,
        "headers": [(b"x-forwarded-for", b"203.0.113.9")], "client": ("127.0.0.1", 5000),
    }  # fmt: skip
    assert client_address(Request(scope)) == "127.0.0.1"


def test_openapi_declares_the_error_answers_and_no_422_body_it_never_sends(api: Api) -> None:
    document = api.viewer.get("/api/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert schemas["Error"]["required"] == ["detail"]
    reference = {"$ref": "#/components/schemas/Error"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for code in ("400", "401", "403", "404", "409"):
                declared = operation["responses"].get(code)
                assert declared is not None, (method, path, code)
                assert declared["content"]["application/json"]["schema"] == reference
    # What the server sends fits the model: one sentence under "detail", and only the
    # model's other fields (the field at fault, the fix, the active run) beside it.
    with api.client() as anonymous:
        unsigned = anonymous.get("/api/v1/datasets")
    for answer in (
        api.viewer.get("/api/v1/datasets/nosuch"),
        api.viewer.post("/api/v1/sources", json={"name": "x", "url": "sqlite:///x"}),
        unsigned,
        api.viewer.post("/api/v1/segments/validate", json={}),
    ):
        assert answer.status_code in (401, 403, 404, 422), answer.text
        assert "detail" in answer.json()
        assert set(answer.json()) <= set(schemas["Error"]["properties"])
        assert isinstance(answer.json()["detail"], str)


@pytest.mark.parametrize("workers", [0, 2])
def test_the_serve_command_runs_as_many_workers_as_asked(
    sqlite_ctx: Context, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """The command itself (main started a worker whatever --workers said): the threads
    alive while the web server would be serving, and the banner it prints."""
    import uvicorn

    from audiencesync.cli import common
    from audiencesync.cli.serve import serve

    seen: list[str] = []
    options: dict[str, object] = {}

    def serving(*_args: object, **kwargs: object) -> None:
        seen.extend(t.name for t in threading.enumerate() if t.is_alive())
        options.update(kwargs)

    monkeypatch.setattr(uvicorn, "run", serving)
    monkeypatch.setattr(common.state, "settings", sqlite_ctx.settings)
    serve(host="127.0.0.1", port=0, workers=workers)
    assert "scheduler" in seen
    # uvicorn would otherwise take X-Forwarded-For from loopback as the client's address
    # before the app sees it; the app reads it from AUDIENCESYNC_TRUSTED_PROXIES only.
    assert options["proxy_headers"] is False
    assert sorted(n for n in seen if "worker" in n.lower()) == [
        f"worker-{n}" for n in range(workers)
    ]


def test_serve_with_zero_workers_starts_no_worker(sqlite_ctx: Context) -> None:
    stop = threading.Event()
    assert [t.name for t in background_threads(sqlite_ctx, stop, workers=0)] == ["scheduler"]
    assert [t.name for t in background_threads(sqlite_ctx, stop, workers=2)] == [
        "scheduler", "worker-0", "worker-1",
    ]  # fmt: skip


def test_forged_forwarded_for_lines_do_not_escape_the_address_throttle(api: Api) -> None:
    """Through the real login form, from loopback (main trusted X-Forwarded-For from
    there; the test server runs uvicorn as ``serve`` does, without proxy headers):
    guesses at many user names, each claiming a new address, are still counted
    against the one real address, and blocked at its limit."""
    import re

    from audiencesync.api import auth

    def guess(number: int) -> int:
        with api.client() as browser:
            page = browser.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert token is not None
            answer = browser.post(
                "/login",
                data={"name": f"nobody{number}", "password": "wrong", "csrf_token": token[1]},
                headers={"X-Forwarded-For": f"203.0.113.{number % 250}"},
            )
        return answer.status_code

    answers = [guess(n) for n in range(auth.MAX_FAILURES_PER_ADDRESS + 1)]
    assert answers[: auth.MAX_FAILURES_PER_ADDRESS] == [403] * auth.MAX_FAILURES_PER_ADDRESS
    assert answers[-1] == 429
