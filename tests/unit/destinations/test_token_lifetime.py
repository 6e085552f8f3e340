"""A token living less than the refresh margin is refreshed once per lifetime (issue 12)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from audiencesync.destinations.snapchat import TokenSet
from audiencesync.destinations.snapchat.oauth import exchange_code, refresh_tokens
from audiencesync.http.clock import ManualClock

from .fakesnap import FakeSnap, fast_policy

START = datetime(2026, 12, 1, 12, tzinfo=UTC)


@pytest.fixture
def snap() -> FakeSnap:
    return FakeSnap(ManualClock(), token_ttl=5.0)


def _http(snap: FakeSnap) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(snap.handle))


def test_tokens_keep_the_lifetime_they_were_issued_with(snap: FakeSnap) -> None:
    with _http(snap) as http:
        tokens = refresh_tokens(
            snap.app(), snap.first_tokens.refresh_token, http, policy=fast_policy(),
            clock=snap.clock,
        )  # fmt: skip
    assert tokens.lifetime_seconds == 5.0
    assert tokens.expires_at == snap.clock.now() + timedelta(seconds=5)
    assert TokenSet.from_dict(tokens.to_dict()) == tokens


def test_tokens_stored_before_the_lifetime_was_kept_still_load() -> None:
    stored = {
        "access_token": "a",
        "refresh_token": "r",
        "expires_at": START.isoformat(),
        "scope": "s",
    }
    tokens = TokenSet.from_dict(stored)
    assert tokens.lifetime_seconds is None
    assert tokens.refresh_margin(120) == 120  # the configured margin, as before


@pytest.mark.parametrize(
    ("lifetime", "margin", "expected"),
    [
        (1800.0, 120.0, 120.0),
        (5.0, 120.0, 2.5),
        (240.0, 120.0, 120.0),
        (200.0, 120.0, 100.0),
        (0.0, 120.0, 0.0),
        (-1.0, 120.0, 0.0),
    ],  # expires_in 0 or less: refreshed once expired
)
def test_the_margin_is_capped_to_half_the_lifetime(
    lifetime: float, margin: float, expected: float
) -> None:
    tokens = TokenSet("a", "r", START + timedelta(seconds=lifetime), "", lifetime)
    assert tokens.refresh_margin(margin) == expected
    assert not tokens.refresh_due(margin, START + timedelta(seconds=lifetime - expected - 0.1))
    assert tokens.refresh_due(margin, START + timedelta(seconds=lifetime - expected))


def test_a_five_second_token_is_refreshed_once_per_lifetime_not_per_call(snap: FakeSnap) -> None:
    seen: list[TokenSet] = []
    first = dataclasses.replace(snap.first_tokens, lifetime_seconds=5.0)
    client = snap.client(
        tokens=first, on_tokens=seen.append, token_refresh_margin_seconds=120,
        requests_per_second=1e6,
    )  # fmt: skip
    for _ in range(10):
        client.me()
    assert snap.refresh_calls == 0  # a fresh token is used, not refreshed on every call
    snap.clock.advance(2.4)
    client.me()
    assert snap.refresh_calls == 0
    snap.clock.advance(0.2)  # past half its life: refreshed, once
    for _ in range(10):
        client.me()
    assert snap.refresh_calls == 1
    assert seen[-1].lifetime_seconds == 5.0
    for _ in range(5):  # 12.5 s more, five lifetimes' worth of halves: five refreshes
        snap.clock.advance(2.5)
        client.me()
        client.me()
    assert snap.refresh_calls == 6
    assert len(seen) == 6
    assert client.tokens == seen[-1]
    assert seen[-1].refresh_token in snap.refresh  # the rotated one still works
    client.close()


def test_exchange_records_the_lifetime(snap: FakeSnap) -> None:
    with _http(snap) as http:
        tokens = exchange_code(
            snap.app(), "good-code", http, policy=fast_policy(), clock=snap.clock
        )
    assert tokens.lifetime_seconds == 5.0
