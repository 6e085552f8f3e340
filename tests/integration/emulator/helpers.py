"""Helpers for emulator tests: a fake clock, hashes, request bodies."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from audiencesync.emulator.testing import EmulatorHandle


class FakeClock:
    """A wall clock that moves only when told to."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def hashes(count: int, salt: str = "") -> list[str]:
    """``count`` distinct SHA-256 hex digests."""
    return [hashlib.sha256(f"{salt}{i}".encode()).hexdigest() for i in range(count)]


def users_body(values: list[str], schema: str = "EMAIL_SHA256") -> dict[str, Any]:
    return {"users": [{"schema": [schema], "data": [[value] for value in values]}]}


def bearer_client(handle: EmulatorHandle, access_token: str) -> httpx.Client:
    return httpx.Client(
        base_url=handle.api_url,
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=60.0,
    )


def segment_body(handle: EmulatorHandle, name: str = "Customers") -> dict[str, Any]:
    return {
        "segments": [
            {
                "name": name,
                "description": "test",
                "source_type": "FIRST_PARTY",
                "retention_in_days": 9999,
                "ad_account_id": handle.ad_account_id,
            }
        ]
    }


def create_segment(api: httpx.Client, handle: EmulatorHandle, name: str = "Customers") -> str:
    response = api.post(
        f"/v1/adaccounts/{handle.ad_account_id}/segments", json=segment_body(handle, name)
    )
    assert response.status_code == 200, response.text
    segment_id: str = response.json()["segments"][0]["segment"]["id"]
    return segment_id


def segment(api: httpx.Client, segment_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/segments/{segment_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["segments"][0]["segment"]
    return found


def assert_snap_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    """The answer is Snap's error shape with ``status`` (and ``code`` when given)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["request_status"] == "ERROR"
    assert body["request_id"]
    assert body["debug_message"]
    assert body["display_message"]
    assert body["error_code"]
    if code is not None:
        assert body["error_code"] == code
