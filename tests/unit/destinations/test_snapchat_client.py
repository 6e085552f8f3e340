"""SnapchatClient over httpx.MockTransport: tokens, the retry table, paging, batching, logs."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest

from audiencesync.destinations.snapchat import Schema, SnapchatClient, TokenSet
from audiencesync.errors import (
    DestinationError,
    DestinationNotFoundError,
    DestinationPermissionError,
    RateLimitedError,
    ReauthenticationRequiredError,
    TransientDestinationError,
    UserInputError,
)
from audiencesync.http.clock import ManualClock
from audiencesync.settings import Settings

from .fakesnap import AD_ACCOUNT, API, FakeSnap, error


def hashes(n: int, salt: str = "") -> list[str]:
    return [hashlib.sha256(f"{salt}{i}".encode()).hexdigest() for i in range(n)]


@pytest.fixture
def snap() -> FakeSnap:
    return FakeSnap(ManualClock())


# -- tokens ----------------------------------------------------------------------------


def test_refreshes_before_expiry_without_meeting_a_401(snap: FakeSnap) -> None:
    seen: list[TokenSet] = []
    client = snap.client(on_tokens=seen.append, token_refresh_margin_seconds=120)
    client.me()
    assert snap.refresh_calls == 0
    snap.clock.advance(1800 - 119)  # inside the margin
    client.me()
    assert snap.refresh_calls == 1
    api = snap.api_requests()
    assert len(api) == 2  # no 401 round trip
    assert api[1].headers["Authorization"] == f"Bearer {seen[0].access_token}"


def test_failed_early_refresh_keeps_using_the_still_valid_token(snap: FakeSnap) -> None:
    client = snap.client(requests_per_second=1e6)
    snap.clock.advance(1800 - 60)  # inside the margin, not yet expired
    snap.fail_next("POST", "/login", *[error(503)] * 4)
    assert client.me().id == "u1"
    assert snap.api_requests()[-1].headers["Authorization"].endswith(snap.first_tokens.access_token)
    snap.clock.advance(61)  # now expired: the next call refreshes for real
    assert client.me().id == "u1"
    assert snap.refresh_calls == 1


def test_refresh_on_401_then_replay(snap: FakeSnap) -> None:
    seen: list[TokenSet] = []
    client = snap.client(on_tokens=seen.append, requests_per_second=1e6)
    snap.fail_next("GET", "/v1/me", httpx.Response(401, text="<html>expired</html>"))
    user = client.me()
    assert user.id == "u1"
    first, replay = snap.api_requests("GET")
    assert first.headers["Authorization"] == f"Bearer {snap.first_tokens.access_token}"
    assert replay.headers["Authorization"] == f"Bearer {seen[0].access_token}"
    assert snap.refresh_calls == 1
    assert sum(snap.clock.sleeps) < 0.001  # no backoff, only rate-limit spacing


def test_a_refreshed_token_refused_again_is_refreshed_again(snap: FakeSnap) -> None:
    client = snap.client(requests_per_second=1e6)
    snap.fail_next("GET", "/v1/me", httpx.Response(401), httpx.Response(401))
    assert client.me().id == "u1"
    assert snap.refresh_calls == 2
    tokens = [r.headers["Authorization"] for r in snap.api_requests("GET")]
    assert len(set(tokens)) == 3  # each token was tried once


def test_401s_after_every_refresh_ask_for_reauthentication(snap: FakeSnap) -> None:
    client = snap.client(connection_name="snap-main", requests_per_second=1e6)
    snap.fail_next("GET", "/v1/me", *[httpx.Response(401)] * 10)
    with pytest.raises(ReauthenticationRequiredError, match="re-authenticate connection snap-main"):
        client.me()
    assert snap.refresh_calls == 3  # MAX_REFRESHES_PER_CALL, then the user is asked


def test_rotated_refresh_token_goes_to_the_callback(snap: FakeSnap) -> None:
    seen: list[TokenSet] = []
    client = snap.client(on_tokens=seen.append)
    snap.expire_all()
    client.me()
    (new,) = seen
    assert new.refresh_token != snap.first_tokens.refresh_token
    assert new.refresh_token in snap.refresh
    assert snap.first_tokens.refresh_token not in snap.refresh  # rotated away
    assert client.tokens == new
    snap.expire_all()
    client.me()  # the rotated token is the one used next
    assert len(seen) == 2


@pytest.mark.parametrize("how", ["server_expired_401", "client_sees_expiry"])
def test_one_refresh_under_concurrency(snap: FakeSnap, how: str) -> None:
    seen: list[TokenSet] = []
    client = snap.client(on_tokens=seen.append, max_concurrency=8, requests_per_second=1e6)
    snap.refresh_delay = lambda: time.sleep(0.05)  # widen the race window
    if how == "server_expired_401":
        snap.expire_all()
    else:
        snap.clock.advance(1800)
    barrier = threading.Barrier(8)

    def call() -> str:
        barrier.wait()
        return client.me().id

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: call(), range(8)))
    assert results == ["u1"] * 8
    assert snap.refresh_calls == 1
    assert len(seen) == 1


def test_invalid_grant_stops_every_thread_without_asking_again(snap: FakeSnap) -> None:
    client = snap.client(connection_name="snap-main", requests_per_second=1e6)
    snap.revoked = True
    snap.expire_all()
    with pytest.raises(ReauthenticationRequiredError) as caught:
        client.me()
    assert "re-authenticate connection snap-main" in caught.value.message
    assert not caught.value.retryable
    with pytest.raises(ReauthenticationRequiredError):
        client.organizations()
    assert snap.refresh_calls == 1
    assert sum(snap.clock.sleeps) < 0.001  # no backoff, only rate-limit spacing


# -- the retry table ---------------------------------------------------------------------


def test_retry_after_is_honoured(snap: FakeSnap) -> None:
    client = snap.client(requests_per_second=1e6)
    snap.fail_next("GET", "/v1/me", httpx.Response(429, headers={"Retry-After": "3"}, json={}))
    client.me()
    assert snap.clock.sleeps == [3.0]


def test_429_storm_backs_off_exponentially_then_succeeds(snap: FakeSnap) -> None:
    client = snap.client(requests_per_second=1e6)
    snap.fail_next("GET", "/v1/me", *[httpx.Response(429, json={})] * 5)
    client.me()
    assert snap.clock.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_429_storm_gives_up_as_retryable(snap: FakeSnap) -> None:
    client = snap.client(requests_per_second=1e6)
    snap.fail_next("GET", "/v1/me", *[httpx.Response(429, json={})] * 6)
    with pytest.raises(RateLimitedError) as caught:
        client.me()
    assert caught.value.retryable
    assert "AUDIENCESYNC_HTTP_REQUESTS_PER_SECOND" in caught.value.message
    assert len(snap.api_requests()) == 6


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried(snap: FakeSnap, status: int) -> None:
    client = snap.client(requests_per_second=1e6)
    snap.fail_next("GET", "/v1/me", error(status), error(status))
    assert client.me().id == "u1"
    assert snap.clock.sleeps == [0.5, 1.0]


def test_server_errors_give_up_after_max_attempts(snap: FakeSnap) -> None:
    client = snap.client(requests_per_second=1e6)
    snap.fail_next("GET", "/v1/me", *[error(503)] * 4)
    with pytest.raises(TransientDestinationError) as caught:
        client.me()
    assert caught.value.retryable
    assert caught.value.status == 503
    assert "4 times" in caught.value.message
    assert len(snap.api_requests()) == 4


def _raise(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def responder(request: httpx.Request) -> httpx.Response:
        raise exc

    return responder


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ],
)
def test_transport_failures_are_retried(snap: FakeSnap, exc: Exception) -> None:
    client = snap.client(requests_per_second=1e6)
    segment = snap.add_segment()
    snap.fail_next("POST", "/v1/segments", _raise(exc))
    result = client.add_users(segment, Schema.EMAIL_SHA256, hashes(3))
    assert result.requests == 1
    assert snap.members[(segment, "EMAIL_SHA256")] == set(hashes(3))
    assert snap.clock.sleeps == [0.5]


def test_transport_failures_give_up_as_retryable(snap: FakeSnap) -> None:
    client = snap.client(requests_per_second=1e6)
    snap.fail_next("GET", "/v1/me", *[_raise(httpx.ConnectError("refused"))] * 4)
    with pytest.raises(
        TransientDestinationError, match=r"(?i)could not connect to Snapchat"
    ) as caught:
        client.me()
    assert caught.value.retryable
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_create_is_not_retried_after_an_ambiguous_failure(snap: FakeSnap) -> None:
    client = snap.client()
    snap.fail_next("POST", "/v1/adaccounts", error(500))
    with pytest.raises(TransientDestinationError) as caught:
        client.create_segment(AD_ACCOUNT, "Buyers")
    assert not caught.value.retryable
    assert "check there before trying again" in caught.value.message
    assert snap.segments == {}
    assert len(snap.api_requests("POST")) == 1


def test_create_is_retried_when_the_request_surely_was_not_sent(snap: FakeSnap) -> None:
    client = snap.client()
    snap.fail_next("POST", "/v1/adaccounts", _raise(httpx.ConnectError("refused")))
    snap.fail_next("POST", "/v1/adaccounts", httpx.Response(429, json={}))
    segment = client.create_segment(AD_ACCOUNT, "Buyers")
    assert segment.name == "Buyers"
    assert len(snap.segments) == 1


@pytest.mark.parametrize("status", [400, 405, 406, 410])
def test_client_errors_fail_at_once(snap: FakeSnap, status: int) -> None:
    client = snap.client()
    snap.fail_next("GET", "/v1/me", error(status, message="bad thing"))
    with pytest.raises(DestinationError) as caught:
        client.me()
    assert type(caught.value) is DestinationError
    assert not caught.value.retryable
    assert caught.value.status == status
    assert "bad thing" in caught.value.message
    assert len(snap.api_requests()) == 1
    assert snap.clock.sleeps == []


def test_e3002_is_a_permission_error_naming_the_ad_account(snap: FakeSnap) -> None:
    client = snap.client()
    snap.fail_next("POST", "/v1/adaccounts", error(403, "E3002", "no access"))
    with pytest.raises(DestinationPermissionError) as caught:
        client.create_segment(AD_ACCOUNT, "Buyers")
    message = caught.value.message
    assert message.startswith(
        f"The Snapchat user of this connection lacks access to ad account {AD_ACCOUNT}"
    )
    assert "Data Manager" in message
    assert caught.value.error_code == "E3002"
    assert not caught.value.retryable
    assert len(snap.api_requests()) == 1


def test_unknown_segment_is_not_found(snap: FakeSnap) -> None:
    client = snap.client()
    with pytest.raises(DestinationNotFoundError, match="segment 999") as caught:
        client.get_segment("999")
    assert not caught.value.retryable


def test_error_inside_a_200_envelope_is_raised(snap: FakeSnap) -> None:
    client = snap.client()
    snap.fail_next(
        "GET",
        "/v1/me",
        httpx.Response(200, json={"request_status": "Error", "debug_message": "broken"}),
    )
    with pytest.raises(DestinationError, match="broken"):
        client.me()


# -- limits ----------------------------------------------------------------------------


def test_rate_limit_spaces_requests(snap: FakeSnap) -> None:
    client = snap.client(requests_per_second=10)
    for _ in range(21):
        client.me()
    # Ten at once, ten 1.1 s later (a second and its margin), the last at 2.2 s.
    assert snap.clock.monotonic() == pytest.approx(2.2)


def test_concurrency_limit_bounds_requests_in_flight() -> None:
    snap = FakeSnap(ManualClock())
    in_flight = 0
    peak = 0
    lock = threading.Lock()
    inner = snap.handle

    def slow(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.02)
        with lock:
            in_flight -= 1
        return inner(request)

    client = SnapchatClient(
        API,
        snap.app(),
        snap.first_tokens,
        lambda _t: None,
        clock=snap.clock,
        transport=httpx.MockTransport(slow),
        max_concurrency=3,
        requests_per_second=1e6,
    )
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda _: client.me(), range(30)))
    assert peak == 3


# -- segments ----------------------------------------------------------------------------


def test_segment_lifecycle(snap: FakeSnap) -> None:
    client = snap.client()
    created = client.create_segment(AD_ACCOUNT, "Buyers", description="d", retention_in_days=180)
    sent = orjson.loads(snap.api_requests("POST")[0].content)
    assert sent == {
        "segments": [
            {
                "name": "Buyers",
                "description": "d",
                "source_type": "FIRST_PARTY",
                "retention_in_days": 180,
                "ad_account_id": AD_ACCOUNT,
            }
        ]
    }
    assert client.get_segment(created.id).name == "Buyers"
    updated = client.update_segment(AD_ACCOUNT, created.id, name="Buyers 2")
    assert (updated.name, updated.description, updated.retention_in_days) == ("Buyers 2", "d", 180)
    put = orjson.loads(snap.api_requests("PUT")[0].content)["segments"][0]
    assert put["id"] == created.id
    client.delete_segment(created.id)
    assert snap.segments == {}


def test_list_segments_follows_every_page_on_the_configured_host(snap: FakeSnap) -> None:
    for n in range(5):
        snap.add_segment(str(1000 + n), f"s{n}")
    client = snap.client()
    segments = client.list_segments(AD_ACCOUNT)
    assert [s.name for s in segments] == ["s0", "s1", "s2", "s3", "s4"]
    gets = snap.api_requests("GET")
    assert len(gets) == 3
    assert all(r.url.host == "adsapi.test" for r in gets)


def test_segment_name_is_checked(snap: FakeSnap) -> None:
    with pytest.raises(UserInputError, match="375"):
        snap.client().create_segment(AD_ACCOUNT, "x" * 376)
    assert snap.requests == []


def test_me_organizations_and_ad_accounts(snap: FakeSnap) -> None:
    client = snap.client()
    assert client.me().display_name == "Ada"
    (org,) = client.organizations()
    (account,) = client.ad_accounts(org.id)
    assert (account.id, account.organization_id) == (AD_ACCOUNT, org.id)


# -- members -----------------------------------------------------------------------------


def test_250001_ids_go_as_three_requests(snap: FakeSnap) -> None:
    segment = snap.add_segment()
    client = snap.client()
    ids = hashes(250_001)
    result = client.add_users(segment, Schema.PHONE_SHA256, ids)
    posts = snap.api_requests("POST")
    sizes = [len(orjson.loads(r.content)["users"][0]["data"]) for r in posts]
    assert sizes == [100_000, 100_000, 50_001]
    for request in posts:
        (user,) = orjson.loads(request.content)["users"]
        assert user["schema"] == ["PHONE_SHA256"]
        assert request.headers["Content-Type"] == "application/json"
    assert (result.identifiers, result.requests) == (250_001, 3)
    assert result.bytes_sent == sum(len(r.content) for r in posts)
    assert result.number_uploaded_users == 250_001
    assert snap.members[(segment, "PHONE_SHA256")] == set(ids)


def test_remove_sends_delete_with_a_body_and_remove_all(snap: FakeSnap) -> None:
    segment = snap.add_segment()
    client = snap.client()
    client.add_users(segment, "EMAIL_SHA256", hashes(10))
    client.remove_users(segment, Schema.EMAIL_SHA256, hashes(4))
    assert snap.members[(segment, "EMAIL_SHA256")] == set(hashes(10)[4:])
    delete = snap.api_requests("DELETE")[0]
    assert delete.url.path == f"/v1/segments/{segment}/users"
    assert orjson.loads(delete.content)["users"][0]["data"] == [[h] for h in hashes(4)]
    client.remove_all_users(segment)
    assert snap.members[(segment, "EMAIL_SHA256")] == set()
    assert snap.api_requests("DELETE")[-1].url.path == f"/v1/segments/{segment}/all_users"


@pytest.mark.parametrize(
    "bad",
    ["A" * 64, "a" * 63, "g" * 64, 'a"],["' + "a" * 59, "é" * 64],
)
def test_values_that_are_not_hashes_are_refused_before_sending(snap: FakeSnap, bad: str) -> None:
    segment = snap.add_segment()
    with pytest.raises(UserInputError, match="64 lowercase hex"):
        snap.client().add_users(segment, Schema.EMAIL_SHA256, [*hashes(2), bad])
    assert snap.requests == []


def test_small_batch_size_setting_splits_further(snap: FakeSnap) -> None:
    segment = snap.add_segment()
    client = snap.client(max_ids_per_request=4)
    assert client.add_users(segment, Schema.EMAIL_SHA256, hashes(10)).requests == 3


# -- logging -----------------------------------------------------------------------------


def test_one_log_line_per_call_without_tokens_or_hashes(
    snap: FakeSnap, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="audiencesync")
    segment = snap.add_segment()
    client = snap.client(requests_per_second=1e6)
    snap.expire_all()
    ids = hashes(5)
    snap.fail_next("POST", "/v1/segments", error(503))
    client.add_users(segment, Schema.EMAIL_SHA256, ids)
    client.create_segment(AD_ACCOUNT, "Buyers")
    text = caplog.text
    secrets = [*snap.access, *snap.refresh, "csecret-value", "ada@example.com", *ids]
    for secret in secrets:
        assert secret not in text
    assert "secretvalue" not in text
    calls = [
        r
        for r in caplog.records
        if r.name == "audiencesync.http.sender" and r.levelno == logging.INFO
    ]
    # 503, 401, refresh, success, create
    assert len(calls) == 5
    lines = [r.getMessage() for r in calls]
    assert lines[0].startswith("POST /v1/segments/{segment_id}/users 503 ")
    assert f"segment_id={segment}" in lines[0]
    assert "schema=EMAIL_SHA256 count=5" in lines[0]
    assert " ms " in lines[0]
    assert lines[1].startswith("POST /v1/segments/{segment_id}/users 401 ")
    assert lines[2].startswith("POST /login/oauth2/access_token 200 ")
    assert lines[3].startswith("POST /v1/segments/{segment_id}/users 200 ")
    assert lines[4].startswith("POST /v1/adaccounts/{ad_account_id}/segments 200")
    assert f"ad_account_id={AD_ACCOUNT}" in lines[4]


# -- factory -----------------------------------------------------------------------------


def test_from_settings_uses_every_knob(snap: FakeSnap) -> None:
    settings = Settings(
        snapchat_api_url=API,
        snapchat_auth_url="https://accounts.test",
        snapchat_client_id="cid",
        snapchat_client_secret="csecret-value",
        http_max_attempts=2,
        batch_size=3,
        http_max_concurrency=2,
    )
    client = SnapchatClient.from_settings(
        settings,
        snap.first_tokens,
        lambda _t: None,
        clock=snap.clock,
        transport=httpx.MockTransport(snap.handle),
    )
    assert client.max_ids_per_request == 3
    snap.fail_next("GET", "/v1/me", error(503), error(503))
    with pytest.raises(TransientDestinationError):
        client.me()
    assert len(snap.api_requests()) == 2
    snap.expire_all()
    assert client.me().id == "u1"  # refresh works with the app from settings
