"""Rate limit, injected faults, dropped connections, and the request counts."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from audiencesync.emulator.testing import EmulatorHandle, running_emulator
from tests.integration.emulator.helpers import (
    FakeClock,
    assert_snap_error,
    bearer_client,
    create_segment,
    hashes,
    users_body,
)


def test_429_over_the_per_token_rate_and_tokens_are_counted_apart() -> None:
    clock = FakeClock()
    with running_emulator(clock=clock, rate_limit=10) as emu:
        first, second = emu.obtain_tokens(), emu.obtain_tokens()
        with (
            bearer_client(emu, first["access_token"]) as api,
            bearer_client(emu, second["access_token"]) as other,
        ):
            statuses = [api.get("/v1/me").status_code for _ in range(12)]
            assert statuses == [200] * 10 + [429] * 2
            assert_snap_error(api.get("/v1/me"), 429)
            # Another token has its own budget.
            assert other.get("/v1/me").status_code == 200
            clock.advance(0.5)  # refills five
            assert [api.get("/v1/me").status_code for _ in range(6)] == [200] * 5 + [429]
        assert emu.request_counts()["me"] == {"200": 16, "429": 4}


def test_the_rate_limit_is_per_second_in_real_time() -> None:
    with running_emulator(rate_limit=10) as emu:
        api = bearer_client(emu, emu.obtain_tokens()["access_token"])
        with api:
            burst = [api.get("/v1/me").status_code for _ in range(15)]
            assert burst.count(429) >= 4
            time.sleep(0.25)
            assert api.get("/v1/me").status_code == 200


def test_injected_shares_are_deterministic_with_a_seed() -> None:
    def run() -> list[int]:
        faults = {"fail_429": 0.2, "fail_500": 0.1, "fail_503": 0.1, "seed": 7}
        with running_emulator(rate_limit=0, **faults) as emu:
            api = bearer_client(emu, emu.obtain_tokens()["access_token"])
            with api:
                return [api.get("/v1/me").status_code for _ in range(200)]

    first, second = run(), run()
    assert first == second
    assert 20 <= first.count(429) <= 60
    assert 5 <= first.count(500) <= 35
    assert 5 <= first.count(503) <= 35
    assert first.count(200) >= 100


def test_scripted_faults_and_their_shapes(emulator: EmulatorHandle, api: httpx.Client) -> None:
    emulator.set_faults(script=["429", "500", "503", "401", "pass"], retry_after=2)
    too_many = api.get("/v1/me")
    assert_snap_error(too_many, 429)
    assert too_many.headers["retry-after"] == "2"
    assert_snap_error(api.get("/v1/me"), 500)
    unavailable = api.get("/v1/me")
    assert unavailable.status_code == 503
    assert unavailable.headers["content-type"].startswith("text/plain")
    assert api.get("/v1/me").status_code == 401
    assert api.get("/v1/me").status_code == 200
    assert api.get("/v1/me").status_code == 200
    emulator.set_faults(script=["429"], retry_after=None)
    assert "retry-after" not in api.get("/v1/me").headers


def test_faults_spare_oauth_and_control_calls_and_can_target_kinds(
    emulator: EmulatorHandle, api: httpx.Client
) -> None:
    segment_id = create_segment(api, emulator)
    emulator.set_faults(fail_503=1.0, only_kinds=["add_users"])
    assert api.get("/v1/me").status_code == 200
    assert emulator.obtain_tokens()["access_token"]
    assert (
        api.post(f"/v1/segments/{segment_id}/users", json=users_body(hashes(3))).status_code == 503
    )
    assert emulator.member_counts(segment_id)["EMAIL_SHA256"] == 0
    emulator.clear_faults()
    assert (
        api.post(f"/v1/segments/{segment_id}/users", json=users_body(hashes(3))).status_code == 200
    )


def test_a_dropped_connection_is_a_transport_error_and_changes_nothing(
    emulator: EmulatorHandle, api: httpx.Client
) -> None:
    segment_id = create_segment(api, emulator)
    emulator.set_faults(script=["drop"])
    with pytest.raises(httpx.TransportError):
        api.post(f"/v1/segments/{segment_id}/users", json=users_body(hashes(50_000)))
    assert emulator.member_counts(segment_id)["EMAIL_SHA256"] == 0
    # The client recovers on a new connection.
    assert api.get("/v1/me").status_code == 200
    assert emulator.request_counts()["add_users"] == {"dropped": 1}


def test_a_drop_after_applying_loses_only_the_answer(
    emulator: EmulatorHandle, api: httpx.Client
) -> None:
    segment_id = create_segment(api, emulator)
    emulator.set_faults(drop_after=1.0, only_kinds=["add_users"])
    with pytest.raises(httpx.RemoteProtocolError):
        api.post(f"/v1/segments/{segment_id}/users", json=users_body(hashes(10)))
    assert emulator.members(segment_id) == set(hashes(10))
    log = [entry for entry in emulator.request_log() if entry["kind"] == "add_users"]
    assert log[-1]["status"] == "dropped"
    assert log[-1]["ids"] == 10


def test_added_latency(emulator: EmulatorHandle, api: httpx.Client) -> None:
    emulator.set_faults(latency_ms=150)
    started = time.perf_counter()
    assert api.get("/v1/me").status_code == 200
    assert time.perf_counter() - started >= 0.15
    emulator.set_faults(latency_ms=0)


def test_clearing_the_latency_releases_a_request_already_waiting(
    emulator: EmulatorHandle, api: httpx.Client
) -> None:
    """A gate a test opens when it is ready: a long latency, then cleared."""
    emulator.set_faults(latency_ms=60_000)
    answers: list[int] = []
    waiting = threading.Thread(target=lambda: answers.append(api.get("/v1/me").status_code))
    started = time.perf_counter()
    waiting.start()
    deadline = time.monotonic() + 10
    while emulator.waiting().get("me") != 1:
        assert time.monotonic() < deadline, emulator.waiting()
        time.sleep(0.02)
    assert answers == []  # still held
    emulator.clear_faults()
    waiting.join(timeout=10)
    assert answers == [200]
    assert time.perf_counter() - started < 10


def test_request_counts_by_kind_and_status(emulator: EmulatorHandle, api: httpx.Client) -> None:
    emulator.clear_requests()
    segment_id = create_segment(api, emulator)
    api.post(f"/v1/segments/{segment_id}/users", json=users_body(hashes(2)))
    api.post(f"/v1/segments/{segment_id}/users", json=users_body(["nope"]))
    api.get("/v1/segments/42")
    counts = emulator.request_counts()
    assert counts["create_segment"] == {"200": 1}
    assert counts["add_users"] == {"200": 1, "400": 1}
    assert counts["get_segment"] == {"404": 1}
    assert [e["ids"] for e in emulator.request_log() if e["kind"] == "add_users"] == [2, None]


def test_bad_fault_settings_are_refused(emulator: EmulatorHandle) -> None:
    for bad in (
        {"fail_429": 1.5},
        {"fail_500": 0.6, "fail_503": 0.6},
        {"script": ["418"]},
        {"x": 1},
    ):
        response = httpx.post(f"{emulator.base_url}/_emulator/faults", json=bad)
        assert response.status_code == 400
        assert response.json()["error"]


def test_reset_returns_to_the_seed(emulator: EmulatorHandle, api: httpx.Client) -> None:
    create_segment(api, emulator)
    emulator.set_faults(fail_500=1.0)
    emulator.reset()
    assert emulator.request_counts() == {}
    state = emulator.state()
    assert state["segments"] == []
    assert state["faults"]["fail_500"] == 0.0
    assert api.get("/v1/me").status_code == 401  # tokens are gone too
