"""Adding and removing users: what is stored, and everything Snap rejects."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from audiencesync.emulator.testing import EmulatorHandle
from tests.integration.emulator.helpers import (
    assert_snap_error,
    create_segment,
    hashes,
    users_body,
)

JSON = {"Content-Type": "application/json"}


def _post(api: httpx.Client, segment_id: str, body: Any) -> httpx.Response:
    return api.post(f"/v1/segments/{segment_id}/users", content=orjson.dumps(body), headers=JSON)


def _delete(api: httpx.Client, segment_id: str, body: Any) -> httpx.Response:
    return api.request(
        "DELETE", f"/v1/segments/{segment_id}/users", content=orjson.dumps(body), headers=JSON
    )


def test_add_and_remove_users_per_schema(emulator: EmulatorHandle, api: httpx.Client) -> None:
    segment_id = create_segment(api, emulator)
    emails, phones = hashes(5, "e"), hashes(3, "p")
    added = _post(api, segment_id, users_body(emails))
    assert added.status_code == 200
    assert added.json()["request_status"] == "SUCCESS"
    assert added.json()["users"] == [
        {"sub_request_status": "SUCCESS", "user": {"number_uploaded_users": 5}}
    ]
    assert _post(api, segment_id, users_body(phones, "PHONE_SHA256")).status_code == 200
    # Adding the same ids again is harmless.
    assert _post(api, segment_id, users_body(emails[:2])).status_code == 200
    assert emulator.members(segment_id) == set(emails)
    assert emulator.members(segment_id, "PHONE_SHA256") == set(phones)

    # Some clients also put the segment id inside users[0].
    body = users_body(emails[:2])
    body["users"][0]["id"] = segment_id
    removed = _delete(api, segment_id, body)
    assert removed.status_code == 200
    assert removed.json()["users"][0]["user"]["number_uploaded_users"] == 2
    assert emulator.members(segment_id) == set(emails[2:])
    assert emulator.member_counts(segment_id) == {
        "EMAIL_SHA256": 3,
        "PHONE_SHA256": 3,
        "MOBILE_AD_ID_SHA256": 0,
    }

    cleared = api.delete(f"/v1/segments/{segment_id}/all_users")
    assert cleared.status_code == 200
    assert cleared.json()["segments"][0]["segment"]["id"] == segment_id
    assert sum(emulator.member_counts(segment_id).values()) == 0


def test_exactly_100000_ids_are_accepted_and_100001_rejected(
    emulator: EmulatorHandle, api: httpx.Client
) -> None:
    segment_id = create_segment(api, emulator)
    values = hashes(100_001)
    too_many = _post(api, segment_id, users_body(values))
    assert_snap_error(too_many, 400)
    assert "100,000" in too_many.json()["debug_message"]
    assert emulator.member_counts(segment_id)["EMAIL_SHA256"] == 0
    assert _post(api, segment_id, users_body(values[:100_000])).status_code == 200
    assert emulator.member_counts(segment_id)["EMAIL_SHA256"] == 100_000


def _with(values: list[str], index: int, value: Any) -> list[Any]:
    changed: list[Any] = list(values)
    changed[index] = value
    return changed


@pytest.mark.parametrize(
    "bad_value",
    [
        "A" * 64,  # upper case
        "ab" * 31,  # short
        "ab" * 33,  # long
        "g" * 64,  # not hex
        " " + "a" * 63,
        "é" * 64,
        "",
        None,
        123,
    ],
)
def test_values_must_be_64_lowercase_hex(
    emulator: EmulatorHandle, api: httpx.Client, bad_value: Any
) -> None:
    segment_id = create_segment(api, emulator)
    values = hashes(1000)
    body = {
        "users": [
            {"schema": ["EMAIL_SHA256"], "data": [[v] for v in _with(values, 500, bad_value)]}
        ]
    }
    response = _post(api, segment_id, body)
    assert_snap_error(response, 400)
    assert "data[500]" in response.json()["debug_message"]
    # A failed request fails every identifier in it.
    assert emulator.member_counts(segment_id)["EMAIL_SHA256"] == 0


def test_upper_case_hash_of_a_real_email_is_rejected(
    emulator: EmulatorHandle, api: httpx.Client
) -> None:
    segment_id = create_segment(api, emulator)
    upper = "B375B7BBDDB3DE3298FBC7641063D9F03A38E118AA4480C8AB9F58740982E8BD"
    assert_snap_error(_post(api, segment_id, users_body([upper])), 400)
    assert _post(api, segment_id, users_body([upper.lower()])).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        # two schemas in one request, either way
        {"users": [{"schema": ["EMAIL_SHA256", "PHONE_SHA256"], "data": [["a" * 64, "b" * 64]]}]},
        {
            "users": [
                {"schema": ["EMAIL_SHA256"], "data": [["a" * 64]]},
                {"schema": ["PHONE_SHA256"], "data": [["b" * 64]]},
            ]
        },
        # wrong or missing envelope
        {"schema": ["EMAIL_SHA256"], "data": [["a" * 64]]},
        {"user": [{"schema": ["EMAIL_SHA256"], "data": [["a" * 64]]}]},
        {"users": {"schema": ["EMAIL_SHA256"], "data": [["a" * 64]]}},
        {"users": []},
        [{"schema": ["EMAIL_SHA256"], "data": [["a" * 64]]}],
        {"users": [{"schema": "EMAIL_SHA256", "data": [["a" * 64]]}]},
        {"users": [{"schema": [], "data": [["a" * 64]]}]},
        {"users": [{"schema": ["EMAIL_SHA256"], "data": ["a" * 64]}]},
        {"users": [{"schema": ["EMAIL_SHA256"], "data": [["a" * 64, "b" * 64]]}]},
        {"users": [{"schema": ["EMAIL_SHA256"], "data": []}]},
        {"users": [{"schema": ["EMAIL_SHA256"]}]},
        # unknown schemas
        {"users": [{"schema": ["EMAIL"], "data": [["a" * 64]]}]},
        {"users": [{"schema": ["email_sha256"], "data": [["a" * 64]]}]},
        # users[0].id naming another segment
        {"users": [{"id": "1", "schema": ["EMAIL_SHA256"], "data": [["a" * 64]]}]},
    ],
)
def test_malformed_bodies_are_400(emulator: EmulatorHandle, api: httpx.Client, body: Any) -> None:
    segment_id = create_segment(api, emulator)
    assert_snap_error(_post(api, segment_id, body), 400)
    assert_snap_error(_delete(api, segment_id, body), 400)


def test_bad_json_and_a_non_json_body(emulator: EmulatorHandle, api: httpx.Client) -> None:
    segment_id = create_segment(api, emulator)
    path = f"/v1/segments/{segment_id}/users"
    assert_snap_error(api.post(path, content=b'{"users": [', headers=JSON), 400)
    assert_snap_error(api.post(path, content=b"", headers=JSON), 400)
    plain = orjson.dumps(users_body(hashes(1)))
    assert_snap_error(api.post(path, content=plain, headers={"Content-Type": "text/plain"}), 406)
    assert_snap_error(api.post(path, content=plain), 406)


def test_unknown_segment_is_404(api: httpx.Client) -> None:
    assert_snap_error(_post(api, "123456", users_body(hashes(1))), 404, "E3003")
    assert_snap_error(api.delete("/v1/segments/123456/all_users"), 404, "E3003")
