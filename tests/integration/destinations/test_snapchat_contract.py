"""Contract tests: SnapchatClient against the real emulator over loopback HTTP.

Nothing is mocked: the emulator enforces Snap's documented rules (tokens that expire,
the 100,000 cap, the per-token rate limit, E3002) and injects faults on request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from audiencesync.destinations.snapchat import Schema, SnapchatDestination
from audiencesync.errors import (
    DestinationNotFoundError,
    DestinationPermissionError,
    ReauthenticationRequiredError,
)
from audiencesync.types import IdentifierType

from .snapchat_helpers import Connection, HookedTransport, connect, hashes, log_in

emulator_testing = pytest.importorskip(
    "audiencesync.emulator.testing",
    reason="the Snapchat emulator (audiencesync.emulator.testing) is not built yet",
)


@pytest.fixture
def emulator() -> Iterator[Any]:
    with emulator_testing.running_emulator() as handle:
        yield handle


Connect = Callable[..., Connection]


@pytest.fixture
def connected(emulator: Any) -> Iterator[Connect]:
    """``connected(**client_options)``: a logged-in client, closed after the test."""
    made: list[Connection] = []

    def make(**options: Any) -> Connection:
        connection = connect(emulator, **options)
        made.append(connection)
        return connection

    yield make
    for connection in made:
        connection.client.close()


def test_full_oauth_code_flow_reaches_the_seeded_account(emulator: Any, connected: Connect) -> None:
    tokens = log_in(emulator)
    assert tokens.scope == "snapchat-marketing-api"
    connection = connected()
    info = SnapchatDestination(connection.client).check_connection()
    assert info.user_id == emulator.user_id
    assert emulator.organization_id in info.organization_ids
    assert emulator.ad_account_id in {account.id for account in info.ad_accounts}
    assert emulator.request_counts()["oauth_token"]["200"] == 2  # two logins


def test_token_expiring_mid_upload_is_refreshed_and_replayed(
    emulator: Any, connected: Connect
) -> None:
    uploads = 0

    def expire_before_second_upload(request: httpx.Request) -> None:
        nonlocal uploads
        if request.url.path.endswith("/users"):
            uploads += 1
            if uploads == 2:
                assert emulator.expire_tokens() >= 1

    connection = connected(transport=HookedTransport(expire_before_second_upload))
    client = connection.client
    segment = client.create_segment(emulator.ad_account_id, "Mid-upload expiry")
    ids = hashes(250_001)
    result = client.add_users(segment.id, Schema.EMAIL_SHA256, ids)

    assert result.requests == 3
    counts = emulator.request_counts()
    assert counts["add_users"] == {"401": 1, "200": 3}  # one 401, replayed once
    assert counts["oauth_token"]["200"] == 2  # the login and one refresh
    (rotated,) = connection.persisted
    assert client.tokens == rotated
    assert emulator.members(segment.id) == set(ids)


def test_one_refresh_when_many_threads_meet_an_expired_token(
    emulator: Any, connected: Connect
) -> None:
    connection = connected(max_concurrency=4)
    destination = SnapchatDestination(connection.client)
    segment = destination.create_audience(emulator.ad_account_id, "Concurrent refresh")
    batches = [hashes(2_000, salt=f"b{n}-") for n in range(8)]
    emulator.expire_tokens()
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(lambda b: destination.add_batch(segment.id, IdentifierType.EMAIL, b), batches)
        )
    assert sum(r.identifiers for r in results) == 16_000
    assert len(connection.persisted) == 1
    assert emulator.request_counts()["oauth_token"]["200"] == 2
    assert emulator.members(segment.id) == set().union(*map(set, batches))


def test_429_storm_is_ridden_out(emulator: Any, connected: Connect) -> None:
    connection = connected(max_concurrency=4)
    client = connection.client
    segment = client.create_segment(emulator.ad_account_id, "429 storm")
    emulator.set_faults(fail_429=0.6, seed=7, only_kinds=["add_users", "remove_users"])
    batches = [hashes(1_000, salt=f"s{n}-") for n in range(8)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda b: client.add_users(segment.id, "EMAIL_SHA256", b), batches))
    client.remove_users(segment.id, "EMAIL_SHA256", batches[0])
    counts = emulator.request_counts()
    assert counts["add_users"]["429"] > 0
    assert counts["add_users"]["200"] == 8
    emulator.clear_faults()
    assert emulator.members(segment.id) == set().union(*map(set, batches[1:]))


def test_client_stays_under_the_per_token_rate_limit(emulator: Any, connected: Connect) -> None:
    connection = connected(max_concurrency=4, requests_per_second=10)
    client = connection.client
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: client.me(), range(16)))  # beyond the burst of 10
    assert emulator.request_counts()["me"] == {"200": 16}


def test_server_errors_and_dropped_connections_lose_nothing(
    emulator: Any, connected: Connect
) -> None:
    connection = connected(max_concurrency=3)
    client = connection.client
    segment = client.create_segment(emulator.ad_account_id, "Faults")
    emulator.set_faults(
        # each kind of failure surely happens (the script), then more at random
        script=["500", "503", "drop", "drop_after", "500", "503"],
        fail_500=0.1,
        fail_503=0.1,
        drop=0.05,
        drop_after=0.05,
        seed=11,
        only_kinds=["add_users", "remove_users"],
    )
    batches = [hashes(5_000, salt=f"f{n}-") for n in range(8)]
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda b: client.add_users(segment.id, "PHONE_SHA256", b), batches))
        list(
            pool.map(lambda b: client.remove_users(segment.id, "PHONE_SHA256", b[:1_000]), batches)
        )
    counts = emulator.request_counts()
    emulator.clear_faults()
    seen = {status for kind in ("add_users", "remove_users") for status in counts[kind]}
    assert {"500", "503", "dropped"} <= seen
    expected = set().union(*(set(b[1_000:]) for b in batches))
    assert emulator.members(segment.id, "PHONE_SHA256") == expected


def test_e3002_surfaces_at_once_as_a_permission_error(emulator: Any, connected: Connect) -> None:
    client = connected().client
    with pytest.raises(DestinationPermissionError) as caught:
        client.create_segment(emulator.other_ad_account_id, "Not mine")
    assert f"lacks access to ad account {emulator.other_ad_account_id}" in caught.value.message
    assert "Data Manager" in caught.value.message
    assert not caught.value.retryable
    foreign = emulator.create_segment_directly(
        "Foreign", ad_account_id=emulator.other_ad_account_id
    )
    with pytest.raises(DestinationPermissionError):
        client.add_users(foreign["id"], "EMAIL_SHA256", hashes(3))
    counts = emulator.request_counts()
    assert counts["create_segment"] == {"403": 1}
    assert counts["add_users"] == {"403": 1}


def test_unknown_segment_is_not_found(emulator: Any, connected: Connect) -> None:
    client = connected().client
    with pytest.raises(DestinationNotFoundError, match="Snapchat does not know segment"):
        client.get_segment("4199999999999999")


def test_invalid_grant_asks_for_reconnection(emulator: Any, connected: Connect) -> None:
    client = connected().client
    client.me()
    emulator.revoke_tokens()
    with pytest.raises(ReauthenticationRequiredError) as caught:
        client.me()
    assert "re-authenticate connection snap-test" in caught.value.message
    assert not caught.value.retryable
    with pytest.raises(ReauthenticationRequiredError):
        client.organizations()
    assert emulator.request_counts()["oauth_token"] == {"200": 1, "400": 1}


def test_250001_ids_go_as_three_requests(emulator: Any, connected: Connect) -> None:
    client = connected().client
    segment = client.create_segment(emulator.ad_account_id, "Three requests")
    ids = hashes(250_001)
    result = client.add_users(segment.id, Schema.EMAIL_SHA256, ids)
    assert (result.identifiers, result.requests, result.number_uploaded_users) == (
        250_001,
        3,
        250_001,
    )
    assert [e["ids"] for e in emulator.request_log() if e["kind"] == "add_users"] != []
    assert emulator.request_counts()["add_users"] == {"200": 3}
    assert emulator.members(segment.id) == set(ids)


def test_segments_lifecycle_and_paging(emulator: Any, connected: Connect) -> None:
    emulator.set_settings(page_size=2)
    client = connected().client
    created = [client.create_segment(emulator.ad_account_id, f"Page {n}") for n in range(5)]
    listed = client.list_segments(emulator.ad_account_id)
    assert {s.id for s in created} <= {s.id for s in listed}
    assert emulator.request_counts()["list_segments"]["200"] >= 3
    updated = client.update_segment(
        emulator.ad_account_id, created[0].id, name="Renamed", retention_in_days=30
    )
    assert (updated.name, updated.retention_in_days) == ("Renamed", 30)
    client.add_users(created[1].id, Schema.MOBILE_AD_ID_SHA256, hashes(5))
    client.remove_all_users(created[1].id)
    assert emulator.member_counts(created[1].id)["MOBILE_AD_ID_SHA256"] == 0
    client.delete_segment(created[0].id)
    with pytest.raises(DestinationNotFoundError):
        client.get_segment(created[0].id)


def test_after_everything_the_segment_holds_exactly_the_intended_hashes(
    emulator: Any, connected: Connect
) -> None:
    """Faults of every kind, an expiry mid-run, adds and removes of three schemas."""
    requests = 0

    def expire_now_and_then(request: httpx.Request) -> None:
        nonlocal requests
        if request.url.path.endswith("/users"):
            requests += 1
            if requests in (4, 14):  # far enough apart for the first replays to finish
                emulator.expire_tokens()

    connection = connected(transport=HookedTransport(expire_now_and_then), max_concurrency=4)
    destination = SnapchatDestination(connection.client)
    audience = destination.create_audience(emulator.ad_account_id, "Gauntlet")
    emulator.set_faults(
        fail_429=0.15,
        fail_500=0.05,
        fail_503=0.05,
        drop=0.05,
        drop_after=0.05,
        seed=3,
        only_kinds=["add_users", "remove_users"],
    )
    intended: dict[IdentifierType, set[str]] = {}
    jobs = []
    for kind in IdentifierType:
        values = hashes(30_000, salt=f"{kind}-")
        intended[kind] = set(values[5_000:])
        jobs += [("add", kind, values[i : i + 10_000]) for i in range(0, 30_000, 10_000)]
        jobs.append(("remove", kind, values[:5_000]))

    def run(job: tuple[str, IdentifierType, list[str]]) -> None:
        action, kind, values = job
        if action == "add":
            destination.add_batch(audience.id, kind, values)
        else:
            destination.remove_batch(audience.id, kind, values)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(run, [j for j in jobs if j[0] == "add"]))
        list(pool.map(run, [j for j in jobs if j[0] == "remove"]))
    emulator.clear_faults()
    for kind, schema in (
        (IdentifierType.EMAIL, "EMAIL_SHA256"),
        (IdentifierType.PHONE, "PHONE_SHA256"),
        (IdentifierType.MAID, "MOBILE_AD_ID_SHA256"),
    ):
        assert emulator.members(audience.id, schema) == intended[kind]
    assert connection.persisted  # tokens were refreshed and handed over for storage
