"""OAuth: authorize URL, code exchange, refresh, rotation, invalid_grant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from audiencesync.destinations.snapchat import (
    OAuthApp,
    TokenSet,
    authorize_url,
    exchange_code,
    new_state,
    refresh_tokens,
)
from audiencesync.errors import (
    DestinationError,
    NotSetUpError,
    ReauthenticationRequiredError,
    TransientDestinationError,
)
from audiencesync.http.clock import ManualClock
from audiencesync.settings import Settings

from .fakesnap import AUTH, FakeSnap, fast_policy


@pytest.fixture
def snap() -> FakeSnap:
    return FakeSnap(ManualClock())


def _http(snap: FakeSnap) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(snap.handle))


def test_authorize_url_carries_the_app_and_state() -> None:
    app = OAuthApp("cid", "secret", "http://127.0.0.1:8765/cb", "https://accounts.test/")
    state = new_state()
    url = authorize_url(app, state)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        "https://accounts.test/login/oauth2/authorize"
    )
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    assert query == {
        "client_id": "cid",
        "redirect_uri": "http://127.0.0.1:8765/cb",
        "response_type": "code",
        "scope": "snapchat-marketing-api",
        "state": state,
    }
    assert "secret" not in url


def test_states_are_random_and_url_safe() -> None:
    states = {new_state() for _ in range(100)}
    assert len(states) == 100
    assert all(len(s) >= 32 and s.replace("-", "").replace("_", "").isalnum() for s in states)


def test_exchange_code_returns_tokens_expiring_per_expires_in(snap: FakeSnap) -> None:
    with _http(snap) as http:
        tokens = exchange_code(snap.app(), "good-code", http, clock=snap.clock)
    assert tokens.access_token in snap.access
    assert tokens.refresh_token in snap.refresh
    assert tokens.expires_at == snap.clock.now() + timedelta(seconds=1800)
    assert tokens.scope == "snapchat-marketing-api"
    (request,) = snap.requests
    assert request.url == f"{AUTH}/login/oauth2/access_token"
    form = parse_qs(request.content.decode())
    assert form["grant_type"] == ["authorization_code"]
    assert form["redirect_uri"] == ["http://127.0.0.1:8765/cb"]


def test_exchange_refused_code_says_start_again(snap: FakeSnap) -> None:
    with _http(snap) as http, pytest.raises(DestinationError, match="start the Snapchat login"):
        exchange_code(snap.app(), "stale-code", http, clock=snap.clock)


def test_exchange_is_not_retried_after_an_ambiguous_failure(snap: FakeSnap) -> None:
    snap.fail_next("POST", "/login", httpx.Response(500, text="oops"))
    with _http(snap) as http, pytest.raises(DestinationError) as caught:
        exchange_code(snap.app(), "good-code", http, clock=snap.clock, policy=fast_policy())
    assert len(snap.requests) == 1
    assert not caught.value.retryable
    assert "check there" in caught.value.message


def test_bad_client_secret_names_the_settings(snap: FakeSnap) -> None:
    app = OAuthApp("cid", "wrong", "http://127.0.0.1:8765/cb", AUTH)
    with (
        _http(snap) as http,
        pytest.raises(DestinationError, match="AUDIENCESYNC_SNAPCHAT_CLIENT_SECRET"),
    ):
        exchange_code(app, "good-code", http, clock=snap.clock)


def test_refresh_returns_rotated_refresh_token(snap: FakeSnap) -> None:
    first = snap.first_tokens
    with _http(snap) as http:
        second = refresh_tokens(snap.app(), first.refresh_token, http, clock=snap.clock)
    assert second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token


def test_refresh_keeps_the_refresh_token_when_not_rotated() -> None:
    snap = FakeSnap(ManualClock(), rotate_refresh_tokens=False)
    with _http(snap) as http:
        second = refresh_tokens(snap.app(), snap.first_tokens.refresh_token, http, clock=snap.clock)
    assert second.refresh_token == snap.first_tokens.refresh_token


def test_invalid_grant_asks_to_reauthenticate_and_is_not_retried(snap: FakeSnap) -> None:
    snap.revoked = True
    with _http(snap) as http, pytest.raises(ReauthenticationRequiredError) as caught:
        refresh_tokens(
            snap.app(),
            snap.first_tokens.refresh_token,
            http,
            clock=snap.clock,
            policy=fast_policy(),
            connection_name="snap-main",
        )
    assert "re-authenticate connection snap-main" in caught.value.message
    assert not caught.value.retryable
    assert snap.refresh_calls == 1
    assert snap.clock.sleeps == []


def test_refresh_retries_transient_failures(snap: FakeSnap) -> None:
    snap.fail_next("POST", "/login", httpx.Response(503), httpx.Response(500))
    with _http(snap) as http:
        tokens = refresh_tokens(
            snap.app(),
            snap.first_tokens.refresh_token,
            http,
            clock=snap.clock,
            policy=fast_policy(),
        )
    assert tokens.access_token in snap.access
    assert snap.clock.sleeps == [0.5, 1.0]


def test_refresh_gives_up_as_retryable_after_max_attempts(snap: FakeSnap) -> None:
    snap.fail_next("POST", "/login", *[httpx.Response(503)] * 4)
    with _http(snap) as http, pytest.raises(TransientDestinationError) as caught:
        refresh_tokens(
            snap.app(),
            snap.first_tokens.refresh_token,
            http,
            clock=snap.clock,
            policy=fast_policy(max_attempts=4),
        )
    assert caught.value.retryable
    assert len(snap.requests) == 4


def test_token_set_repr_hides_tokens() -> None:
    tokens = TokenSet("acc-SECRET", "ref-SECRET", datetime(2026, 1, 1, tzinfo=UTC), "s")
    assert "SECRET" not in repr(tokens)
    assert "SECRET" not in str(tokens)
    assert "SECRET" not in repr(OAuthApp("id", "app-SECRET", "r"))


def test_token_set_round_trips_and_requires_utc() -> None:
    tokens = TokenSet("a", "r", datetime(2026, 1, 1, 12, tzinfo=UTC), "s")
    assert TokenSet.from_dict(tokens.to_dict()) == tokens
    with pytest.raises(ValueError, match="timezone-aware"):
        TokenSet("a", "r", datetime(2026, 1, 1), "s")


def test_app_from_settings_requires_credentials() -> None:
    with pytest.raises(NotSetUpError, match="AUDIENCESYNC_SNAPCHAT_CLIENT_ID"):
        OAuthApp.from_settings(Settings(snapchat_client_id=None))
    app = OAuthApp.from_settings(
        Settings(snapchat_client_id="id", snapchat_client_secret="s3", snapchat_auth_url=AUTH)
    )
    assert (app.client_id, app.client_secret, app.auth_base_url) == ("id", "s3", AUTH)
