"""The OAuth code flow over real HTTP: authorize page, token endpoint, refresh rotation."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from audiencesync.emulator.testing import EmulatorHandle, running_emulator, start_emulator_process
from tests.integration.emulator.helpers import FakeClock, bearer_client

AUTHORIZE = "/login/oauth2/authorize"
TOKEN = "/login/oauth2/access_token"


def _query(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def _exchange(
    client: httpx.Client, handle: EmulatorHandle, code: str, **overrides: str
) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": handle.client_id,
        "client_secret": handle.client_secret,
        "redirect_uri": handle.redirect_uri,
        **overrides,
    }
    return client.post(TOKEN, data=form)


def _refresh(client: httpx.Client, handle: EmulatorHandle, refresh_token: str) -> httpx.Response:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": handle.client_id,
        "client_secret": handle.client_secret,
    }
    return client.post(TOKEN, data=form)


def _code_by_auto_approve(client: httpx.Client, handle: EmulatorHandle) -> str:
    response = client.get(handle.authorize_url(state="xyz"))
    assert response.status_code == 302
    assert response.headers["location"].startswith(handle.redirect_uri + "?")
    query = _query(response.headers["location"])
    assert query["state"] == "xyz"
    return query["code"]


def _rfc_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.json()["error_description"]


def test_auto_approve_code_flow_gives_tokens_that_work(emulator: EmulatorHandle) -> None:
    with httpx.Client(base_url=emulator.auth_url) as client:
        code = _code_by_auto_approve(client, emulator)
        response = _exchange(client, emulator, code)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    tokens = response.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 1800
    assert tokens["scope"] == "snapchat-marketing-api"
    assert tokens["refresh_token"]
    with bearer_client(emulator, tokens["access_token"]) as api:
        me = api.get("/v1/me").json()
    assert me["request_status"] == "SUCCESS"
    assert me["me"]["organization_id"] == emulator.organization_id


def test_a_person_approves_on_the_page_with_a_form_post() -> None:
    with (
        running_emulator(auto_approve=False) as emulator,
        httpx.Client(base_url=emulator.auth_url) as client,
    ):
        page = client.get(emulator.authorize_url(state="s1"))
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "Approve" in page.text
        action = re.search(r'<form method="post" action="([^"]+)"', page.text)
        assert action is not None
        fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text))
        assert fields["state"] == "s1"
        approved = client.post(action.group(1), data={**fields, "decision": "approve"})
        assert approved.status_code == 303
        query = _query(approved.headers["location"])
        assert query["state"] == "s1"
        assert _exchange(client, emulator, query["code"]).status_code == 200

        denied = client.post(action.group(1), data={**fields, "decision": "deny"})
        assert _query(denied.headers["location"]) == {
            "error": "access_denied",
            "error_description": "the user denied access",
            "state": "s1",
        }


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"client_id": "someone-else"}, "Unknown client_id"),
        ({"redirect_uri": "https://evil.example/cb"}, "is not registered"),
    ],
)
def test_an_unknown_client_or_redirect_gets_an_error_page_not_a_redirect(
    emulator: EmulatorHandle, change: dict[str, str], expected: str
) -> None:
    params = {
        "client_id": emulator.client_id,
        "redirect_uri": emulator.redirect_uri,
        "response_type": "code",
        "scope": "snapchat-marketing-api",
    } | change
    response = httpx.get(f"{emulator.auth_url}{AUTHORIZE}?{urlencode(params)}")
    assert response.status_code == 400
    assert expected in response.text


def test_a_bad_scope_or_response_type_is_redirected_as_an_error(emulator: EmulatorHandle) -> None:
    base = {
        "client_id": emulator.client_id,
        "redirect_uri": emulator.redirect_uri,
        "response_type": "code",
        "scope": "snapchat-marketing-api",
        "state": "q",
    }
    with httpx.Client(base_url=emulator.auth_url) as client:
        wrong_scope = client.get(AUTHORIZE, params=base | {"scope": "other"})
        wrong_type = client.get(AUTHORIZE, params=base | {"response_type": "token"})
    assert _query(wrong_scope.headers["location"])["error"] == "invalid_scope"
    assert _query(wrong_type.headers["location"])["error"] == "unsupported_response_type"
    assert _query(wrong_type.headers["location"])["state"] == "q"


def test_loopback_redirects_on_any_port_only_when_allowed() -> None:
    loopback = "http://127.0.0.1:54321/callback"
    with running_emulator(allow_loopback_redirects=True) as emulator:
        assert httpx.get(emulator.authorize_url(redirect_uri=loopback)).status_code == 302
        tokens = emulator.obtain_tokens(redirect_uri="http://[::1]:4000/cb")
        assert tokens["access_token"]
        remote = "http://10.0.0.1:54321/callback"
        assert httpx.get(emulator.authorize_url(redirect_uri=remote)).status_code == 400
    with running_emulator(allow_loopback_redirects=False) as emulator:
        assert httpx.get(emulator.authorize_url(redirect_uri=loopback)).status_code == 400
        assert httpx.get(emulator.authorize_url()).status_code == 302


def test_a_code_works_once_and_only_with_its_redirect_uri(emulator: EmulatorHandle) -> None:
    with httpx.Client(base_url=emulator.auth_url) as client:
        code = _code_by_auto_approve(client, emulator)
        _rfc_error(
            _exchange(client, emulator, code, redirect_uri="http://127.0.0.1:1/other"),
            400,
            "invalid_grant",
        )
        assert _exchange(client, emulator, code).status_code == 200
        _rfc_error(_exchange(client, emulator, code), 400, "invalid_grant")
        _rfc_error(_exchange(client, emulator, "made-up"), 400, "invalid_grant")


def test_an_expired_code_is_an_invalid_grant() -> None:
    clock = FakeClock()
    with running_emulator(clock=clock) as emulator, httpx.Client(base_url=emulator.auth_url) as c:
        code = _code_by_auto_approve(c, emulator)
        clock.advance(601)
        _rfc_error(_exchange(c, emulator, code), 400, "invalid_grant")


def test_client_authentication(emulator: EmulatorHandle) -> None:
    with httpx.Client(base_url=emulator.auth_url) as client:
        code = _code_by_auto_approve(client, emulator)
        wrong = _exchange(client, emulator, code, client_secret="nope")
        _rfc_error(wrong, 401, "invalid_client")
        # RFC 6749 2.3.1: HTTP Basic works as well as the body.
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": emulator.redirect_uri,
        }
        basic = client.post(TOKEN, data=form, auth=(emulator.client_id, emulator.client_secret))
        assert basic.status_code == 200


def test_malformed_token_requests(emulator: EmulatorHandle) -> None:
    with httpx.Client(base_url=emulator.auth_url) as client:
        as_json = client.post(
            TOKEN,
            json={
                "grant_type": "refresh_token",
                "refresh_token": "x",
                "client_id": emulator.client_id,
                "client_secret": emulator.client_secret,
            },
        )
        _rfc_error(as_json, 400, "invalid_request")
        unsupported = client.post(
            TOKEN,
            data={
                "grant_type": "password",
                "client_id": emulator.client_id,
                "client_secret": emulator.client_secret,
            },
        )
        _rfc_error(unsupported, 400, "unsupported_grant_type")
        missing = client.post(
            TOKEN,
            data={
                "grant_type": "refresh_token",
                "client_id": emulator.client_id,
                "client_secret": emulator.client_secret,
            },
        )
        _rfc_error(missing, 400, "invalid_request")


def test_refresh_rotates_and_the_old_refresh_token_stops_working(
    emulator: EmulatorHandle,
) -> None:
    first = emulator.obtain_tokens()
    with httpx.Client(base_url=emulator.auth_url) as client:
        refreshed = _refresh(client, emulator, first["refresh_token"])
        assert refreshed.status_code == 200
        second = refreshed.json()
        assert second["refresh_token"] != first["refresh_token"]
        assert second["access_token"] != first["access_token"]
        _rfc_error(_refresh(client, emulator, first["refresh_token"]), 400, "invalid_grant")
        assert _refresh(client, emulator, second["refresh_token"]).status_code == 200
        _rfc_error(_refresh(client, emulator, "never-issued"), 400, "invalid_grant")


def test_a_revoked_refresh_token_is_an_invalid_grant(emulator: EmulatorHandle) -> None:
    tokens = emulator.obtain_tokens()
    assert emulator.revoke_tokens(refresh_token=tokens["refresh_token"]) == 1
    with httpx.Client(base_url=emulator.auth_url) as client:
        _rfc_error(_refresh(client, emulator, tokens["refresh_token"]), 400, "invalid_grant")
    # The access token was not revoked with it.
    with bearer_client(emulator, tokens["access_token"]) as api:
        assert api.get("/v1/me").status_code == 200


def test_access_tokens_expire_after_the_ttl_and_refresh_still_works() -> None:
    clock = FakeClock()
    with running_emulator(clock=clock, token_ttl=60) as emulator:
        tokens = emulator.obtain_tokens()
        assert tokens["expires_in"] == 60
        with bearer_client(emulator, tokens["access_token"]) as api:
            assert api.get("/v1/me").status_code == 200
            clock.advance(60)
            assert api.get("/v1/me").status_code == 401
        with httpx.Client(base_url=emulator.auth_url) as client:
            assert _refresh(client, emulator, tokens["refresh_token"]).status_code == 200


@pytest.mark.parametrize(("ttl", "expires_in"), [(0.4, 1), (1.2, 2), (5.0, 5)])
def test_expires_in_is_the_ttl_rounded_up_never_zero(ttl: float, expires_in: int) -> None:
    """``--token-ttl 0.4`` said expires_in 0, which a client reads as no lifetime."""
    clock = FakeClock()
    with running_emulator(clock=clock, token_ttl=ttl) as emulator:
        tokens = emulator.obtain_tokens()
        assert tokens["expires_in"] == expires_in
        with httpx.Client(base_url=emulator.auth_url) as client:
            refreshed = _refresh(client, emulator, tokens["refresh_token"])
        assert refreshed.json()["expires_in"] == expires_in


def test_the_emulator_cli_accepts_the_web_ui_callback_with_no_flag() -> None:
    # `make emulator` then `make serve`: the browser comes back to serve's own callback on
    # port 8000 (or any other), which the emulator must accept without --redirect-uri.
    web_callback = "http://127.0.0.1:8000/connections/callback"
    with start_emulator_process() as emulator:
        page = httpx.get(emulator.authorize_url(redirect_uri=web_callback))
        assert page.status_code == 200
        assert "Approve" in page.text
    with start_emulator_process("--registered-redirects-only") as emulator:
        refused = httpx.get(emulator.authorize_url(redirect_uri=web_callback))
        assert refused.status_code == 400
        assert "is not registered" in refused.text
        assert httpx.get(emulator.authorize_url()).status_code == 200
