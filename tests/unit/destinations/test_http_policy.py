"""The retry table, backoff, Retry-After and the token bucket, without any HTTP."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import httpx
import pytest

from audiencesync.destinations.snapchat.policy import snapchat_policy, token_rules
from audiencesync.errors import (
    DestinationError,
    DestinationNotFoundError,
    DestinationPermissionError,
    RateLimitedError,
    ReauthenticationRequiredError,
    TransientDestinationError,
)
from audiencesync.http import Action, RateBudgets, RequestWindow, RetryPolicy, parse_retry_after
from audiencesync.http.clock import ManualClock
from audiencesync.settings import Settings


@pytest.mark.parametrize(
    ("status", "code", "action", "error"),
    [
        (401, None, Action.REFRESH_TOKEN, ReauthenticationRequiredError),
        (429, None, Action.RATE_LIMITED, RateLimitedError),
        (500, None, Action.RETRY, TransientDestinationError),
        (502, None, Action.RETRY, TransientDestinationError),
        (503, None, Action.RETRY, TransientDestinationError),
        (400, None, Action.FAIL, DestinationError),
        (403, "E3002", Action.FAIL, DestinationPermissionError),
        (403, "e3002", Action.FAIL, DestinationPermissionError),
        (403, None, Action.FAIL, DestinationPermissionError),
        (404, None, Action.FAIL, DestinationNotFoundError),
        (400, "E3003", Action.FAIL, DestinationNotFoundError),
        (405, None, Action.FAIL, DestinationError),
        (406, None, Action.FAIL, DestinationError),
        (410, None, Action.FAIL, DestinationError),
        (302, None, Action.FAIL, DestinationError),
    ],
)
def test_table_maps_status_and_code(
    status: int, code: str | None, action: Action, error: type[Exception]
) -> None:
    rule = snapchat_policy().for_response(status, code)
    assert rule.action is action
    assert rule.error is error


def test_final_errors_are_marked_retryable_or_not() -> None:
    assert TransientDestinationError("x").retryable
    assert RateLimitedError("x").retryable
    for permanent in (
        DestinationError,
        DestinationPermissionError,
        DestinationNotFoundError,
        ReauthenticationRequiredError,
    ):
        assert not permanent("x").retryable


@pytest.mark.parametrize(
    ("exc", "needs_idempotent"),
    [
        (httpx.ConnectError("refused"), False),
        (httpx.ConnectTimeout("slow"), False),
        (httpx.PoolTimeout("pool"), False),
        (httpx.ReadTimeout("slow"), True),
        (httpx.RemoteProtocolError("dropped"), True),
        (httpx.ReadError("reset"), True),
    ],
)
def test_table_maps_exceptions(exc: Exception, needs_idempotent: bool) -> None:
    rule = snapchat_policy().for_exception(exc)
    assert rule.action is Action.RETRY
    assert rule.error is TransientDestinationError
    assert rule.needs_idempotent is needs_idempotent


def test_token_rules_put_invalid_grant_first() -> None:
    policy = snapchat_policy().with_rules(token_rules("refresh_token"))
    assert policy.for_response(400, "invalid_grant").error is ReauthenticationRequiredError
    assert policy.for_response(401, "invalid_grant").error is ReauthenticationRequiredError
    assert policy.for_response(401, None).action is Action.FAIL
    exchange = snapchat_policy().with_rules(token_rules("authorization_code"))
    assert exchange.for_response(400, "invalid_grant").error is DestinationError


def test_backoff_is_exponential_full_jitter_and_capped() -> None:
    ceilings: list[float] = []

    def jitter(low: float, high: float) -> float:
        assert low == 0.0
        ceilings.append(high)
        return high / 2

    policy = RetryPolicy(backoff_base_seconds=0.5, backoff_max_seconds=3.0, jitter=jitter)
    waits = [policy.backoff(n) for n in range(1, 6)]
    assert ceilings == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert waits == [0.25, 0.5, 1.0, 1.5, 1.5]


def test_default_jitter_stays_within_the_ceiling() -> None:
    policy = RetryPolicy(backoff_base_seconds=1.0, backoff_max_seconds=4.0)
    for _ in range(200):
        assert 0.0 <= policy.backoff(3) <= 4.0


def test_delay_is_bounded_by_attempts_and_honours_retry_after() -> None:
    policy = RetryPolicy(max_attempts=3, max_rate_limited_attempts=5, retry_after_max_seconds=60)
    retry = policy.for_response(500, None)
    limited = policy.for_response(429, None)
    assert policy.delay(retry, 2, None) is not None
    assert policy.delay(retry, 3, None) is None
    assert policy.delay(limited, 4, None) is not None
    assert policy.delay(limited, 5, None) is None
    assert policy.delay(limited, 1, 7.0) == 7.0
    assert policy.delay(limited, 1, 61.0) is None  # too long to wait: give up, retryable


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("3", now) == 3.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after("-4", now) == 0.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:09 GMT", now) == 9.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_policy_knobs_come_from_settings() -> None:
    settings = Settings(
        http_max_attempts=3,
        http_max_rate_limited_attempts=7,
        http_backoff_base_seconds=0.1,
        http_backoff_max_seconds=2.0,
        http_retry_after_max_seconds=9.0,
    )
    policy = snapchat_policy(settings)
    assert (policy.max_attempts, policy.max_rate_limited_attempts) == (3, 7)
    assert (policy.backoff_base_seconds, policy.backoff_max_seconds) == (0.1, 2.0)
    assert policy.retry_after_max_seconds == 9.0
    assert policy.platform == "Snapchat"


def test_message_fills_the_template() -> None:
    policy = snapchat_policy()
    rule = policy.for_response(403, "E3002")
    text = policy.message(rule, {"target": "ad account X", "method": "POST", "path": "/p"})
    assert text.startswith("The Snapchat user of this connection lacks access to ad account X")
    assert "Data Manager" in text


def test_a_short_run_of_requests_goes_at_once_then_keeps_to_the_rate() -> None:
    clock = ManualClock()
    window = RequestWindow(10.0, clock)
    sent_at = []
    for _ in range(25):
        window.acquire()
        sent_at.append(clock.monotonic())
    assert sent_at[:10] == [0.0] * 10  # ten at once: nothing waits
    assert sent_at[10:20] == pytest.approx([1.1] * 10)  # a second, plus a 10% margin
    assert sent_at[20:] == pytest.approx([2.2] * 5)
    # Never more than 10 in any window of 1.1 seconds (so in any second).
    for index in range(10, len(sent_at)):
        assert sent_at[index] - sent_at[index - 10] >= 1.1 - 1e-9


def test_a_rate_below_one_request_per_second_spaces_every_request() -> None:
    clock = ManualClock()
    window = RequestWindow(0.5, clock)
    waits = [window.acquire() for _ in range(3)]
    assert waits == pytest.approx([0.0, 2.2, 2.2])


class _FrozenClock(ManualClock):
    """Sleeping does not move time: shows each caller's reservation exactly."""

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)


def test_concurrent_callers_queue_for_their_slots() -> None:
    clock = _FrozenClock()
    window = RequestWindow(10.0, clock)
    threads = [threading.Thread(target=window.acquire) for _ in range(25)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Ten go now (no sleep); the next ten wait 1.1 s, the last five 2.2 s.
    assert sorted(clock.sleeps) == pytest.approx([1.1] * 10 + [2.2] * 5)


def test_each_access_token_has_its_own_budget() -> None:
    clock = _FrozenClock()
    budgets = RateBudgets(10.0, clock)
    for _ in range(10):
        budgets.acquire("token-a")
    budgets.acquire("token-b")  # a fresh token: no wait
    assert clock.sleeps == []
    budgets.acquire("token-a")  # the eleventh of token-a waits for its window
    assert clock.sleeps == pytest.approx([1.1])


class _LateWakeClock(ManualClock):
    """One sleep ends ``late`` seconds after it should (a busy machine), and while it
    lasts other callers take their slots (``meanwhile``), as other threads would."""

    def __init__(self) -> None:
        super().__init__()
        self.late = 0.0
        self.meanwhile: list[object] = []

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        late, self.late = self.late, 0.0
        hooks, self.meanwhile = self.meanwhile, []
        for hook in hooks:
            assert callable(hook)
            hook()
        self.advance(late)


def test_a_request_woken_late_never_goes_out_beside_the_next_slots_requests() -> None:
    clock = _LateWakeClock()
    window = RequestWindow(10.0, clock)
    sent_at: list[float] = []

    def send() -> None:
        window.acquire()
        sent_at.append(clock.monotonic())

    for _ in range(10):
        send()  # ten at once
    # The eleventh sleeps until 1.1 s and wakes 0.3 s late; meanwhile nine others take
    # the slots at 1.1 s and go.
    clock.late = 0.3
    clock.meanwhile = [send] * 9
    send()
    for _ in range(10):
        send()
    assert len(sent_at) == 30
    ordered = sorted(sent_at)
    # What Snapchat sees: never more than 10 requests in any second.
    for index in range(10, len(ordered)):
        assert ordered[index] - ordered[index - 10] >= 1.0, ordered
    # The late request took the next free slot at once: the rate is kept, not lowered.
    assert ordered[19] == pytest.approx(1.4)
    assert max(ordered) == pytest.approx(2.5)
