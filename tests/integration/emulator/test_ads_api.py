"""The Ads API over real HTTP: identity, ad accounts, segments, access and envelopes."""

from __future__ import annotations

import httpx
import pytest

from audiencesync.emulator.testing import EmulatorHandle, running_emulator
from tests.integration.emulator.helpers import (
    FakeClock,
    assert_snap_error,
    bearer_client,
    create_segment,
    segment,
    segment_body,
)


def test_who_the_token_belongs_to(emulator: EmulatorHandle, api: httpx.Client) -> None:
    me = api.get("/v1/me").json()
    assert me["request_status"] == "SUCCESS"
    assert me["request_id"]
    assert me["me"]["id"] == emulator.user_id
    assert me["me"]["email"]
    assert me["me"]["display_name"]

    organizations = api.get("/v1/me/organizations").json()["organizations"]
    assert [o["sub_request_status"] for o in organizations] == ["SUCCESS"]
    assert organizations[0]["organization"]["id"] == emulator.organization_id

    accounts = api.get(f"/v1/organizations/{emulator.organization_id}/adaccounts").json()
    ids = [item["adaccount"]["id"] for item in accounts["adaccounts"]]
    # Only what the user can reach is listed.
    assert ids == [emulator.ad_account_id]
    assert api.get(f"/v1/adaccounts/{emulator.ad_account_id}").status_code == 200
    assert_snap_error(api.get(f"/v1/adaccounts/{emulator.other_ad_account_id}"), 403, "E3002")


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer not-a-token", "Basic dXNlcjpwYXNz", "not-even-a-scheme"],
)
def test_a_missing_or_unknown_token_is_401(
    emulator: EmulatorHandle, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = httpx.get(f"{emulator.api_url}/v1/me", headers=headers)
    assert response.status_code == 401


def test_expired_and_revoked_tokens_are_401(emulator: EmulatorHandle) -> None:
    first, second = emulator.obtain_tokens(), emulator.obtain_tokens()
    with bearer_client(emulator, first["access_token"]) as one:
        assert emulator.expire_tokens() == 2
        assert one.get("/v1/me").status_code == 401
    third = emulator.obtain_tokens()
    assert emulator.revoke_tokens(access_token=third["access_token"]) == 1
    with bearer_client(emulator, third["access_token"]) as api:
        assert api.get("/v1/me").status_code == 401
    # Revoking everything also kills the refresh tokens.
    assert emulator.revoke_tokens() >= 3
    refresh = httpx.post(
        f"{emulator.auth_url}/login/oauth2/access_token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": second["refresh_token"],
            "client_id": emulator.client_id,
            "client_secret": emulator.client_secret,
        },
    )
    assert refresh.json()["error"] == "invalid_grant"


def test_segment_lifecycle(emulator: EmulatorHandle, api: httpx.Client) -> None:
    created = api.post(
        f"/v1/adaccounts/{emulator.ad_account_id}/segments", json=segment_body(emulator, "VIP")
    )
    assert created.status_code == 200
    body = created.json()
    assert body["request_status"] == "SUCCESS"
    item = body["segments"][0]
    assert item["sub_request_status"] == "SUCCESS"
    made = item["segment"]
    assert made["id"].isdigit()
    assert made["name"] == "VIP"
    assert made["source_type"] == "FIRST_PARTY"
    assert made["retention_in_days"] == 9999
    assert made["status"] == "ACTIVE"
    assert made["upload_status"] == "NO_UPLOAD"
    assert made["targetable_status"] == "NOT_READY"
    assert made["approximate_number_users"] == 0
    assert made["organization_id"] == emulator.organization_id

    assert segment(api, made["id"])["name"] == "VIP"
    updated = api.put(
        f"/v1/adaccounts/{emulator.ad_account_id}/segments",
        json={"segments": [{"id": made["id"], "name": "VIP 2", "retention_in_days": 30}]},
    )
    assert updated.status_code == 200
    assert updated.json()["segments"][0]["segment"]["name"] == "VIP 2"
    assert segment(api, made["id"])["retention_in_days"] == 30

    deleted = api.delete(f"/v1/segments/{made['id']}")
    assert deleted.status_code == 200
    assert deleted.json()["segments"][0]["segment"]["id"] == made["id"]
    assert_snap_error(api.get(f"/v1/segments/{made['id']}"), 404, "E3003")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 376}, "375"),
        ({"source_type": "PIXEL"}, "FIRST_PARTY"),
        ({"retention_in_days": 0}, "retention_in_days"),
        ({"retention_in_days": "9999"}, "retention_in_days"),
        ({"ad_account_id": "0b8f4a4e-0000-4c1b-9d3e-2f1a7c5e9b01"}, "ad_account_id"),
    ],
)
def test_segment_fields_are_validated(
    emulator: EmulatorHandle, api: httpx.Client, change: dict[str, object], fragment: str
) -> None:
    body = segment_body(emulator)
    body["segments"][0].update(change)
    response = api.post(f"/v1/adaccounts/{emulator.ad_account_id}/segments", json=body)
    assert_snap_error(response, 400)
    assert fragment in response.json()["debug_message"]


def test_a_missing_required_field_or_envelope_is_400(
    emulator: EmulatorHandle, api: httpx.Client
) -> None:
    path = f"/v1/adaccounts/{emulator.ad_account_id}/segments"
    body = segment_body(emulator)
    del body["segments"][0]["retention_in_days"]
    assert_snap_error(api.post(path, json=body), 400)
    assert_snap_error(api.post(path, json=segment_body(emulator)["segments"][0]), 400)
    assert_snap_error(api.post(path, json={"segment": segment_body(emulator)["segments"]}), 400)
    assert_snap_error(api.post(path, json={"segments": []}), 400)
    bad_json = api.post(path, content=b"{nope", headers={"Content-Type": "application/json"})
    assert_snap_error(bad_json, 400)
    not_json = api.post(path, content=b"name=x", headers={"Content-Type": "text/plain"})
    assert_snap_error(not_json, 406)


def test_another_ad_accounts_segments_are_403(emulator: EmulatorHandle, api: httpx.Client) -> None:
    foreign = emulator.create_segment_directly(
        "Not yours", ad_account_id=emulator.other_ad_account_id
    )["id"]
    body = {"users": [{"schema": ["EMAIL_SHA256"], "data": [["a" * 64]]}]}
    for response in (
        api.get(f"/v1/segments/{foreign}"),
        api.delete(f"/v1/segments/{foreign}"),
        api.post(f"/v1/segments/{foreign}/users", json=body),
        api.request("DELETE", f"/v1/segments/{foreign}/users", json=body),
        api.delete(f"/v1/segments/{foreign}/all_users"),
        api.get(f"/v1/adaccounts/{emulator.other_ad_account_id}/segments"),
        api.post(
            f"/v1/adaccounts/{emulator.other_ad_account_id}/segments",
            json=segment_body(emulator),
        ),
    ):
        assert_snap_error(response, 403, "E3002")
    assert emulator.member_counts(foreign)["EMAIL_SHA256"] == 0


def test_unknown_and_malformed_ids(emulator: EmulatorHandle, api: httpx.Client) -> None:
    assert_snap_error(api.get("/v1/segments/999"), 404, "E3003")
    assert_snap_error(api.get("/v1/segments/abc"), 400)
    assert_snap_error(api.get("/v1/adaccounts/not-a-uuid/segments"), 400)
    unknown_account = "11111111-2222-4333-8444-555555555555"
    assert_snap_error(api.get(f"/v1/adaccounts/{unknown_account}/segments"), 404, "E3003")
    assert api.get("/v1/nothing-here").status_code == 404
    wrong_method = api.patch("/v1/segments/1")
    assert wrong_method.status_code == 405
    assert "GET" in wrong_method.headers["allow"]


def test_segment_lists_page_with_absolute_next_links(
    emulator: EmulatorHandle, api: httpx.Client
) -> None:
    made = [create_segment(api, emulator, f"s{i}") for i in range(7)]
    seen: list[str] = []
    url: str | None = f"{emulator.api_url}/v1/adaccounts/{emulator.ad_account_id}/segments?limit=3"
    pages = 0
    while url:
        body = api.get(url).json()
        seen += [item["segment"]["id"] for item in body["segments"]]
        url = body.get("paging", {}).get("next_link")
        if url:
            assert url.startswith(emulator.api_url + "/v1/")
        pages += 1
    assert pages == 3
    assert seen == made
    path = f"/v1/adaccounts/{emulator.ad_account_id}/segments"
    everything = api.get(path).json()
    assert len(everything["segments"]) == 7
    assert "next_link" not in everything["paging"]
    assert_snap_error(api.get(path, params={"limit": 0}), 400)
    assert_snap_error(api.get(path, params={"limit": 1001}), 400)


def test_an_ad_account_holds_at_most_1000_segments(
    emulator: EmulatorHandle, api: httpx.Client
) -> None:
    path = f"/v1/adaccounts/{emulator.ad_account_id}/segments"
    many = {"segments": segment_body(emulator)["segments"] * 1000}
    assert api.post(path, json=many).status_code == 200
    response = api.post(path, json=segment_body(emulator))
    assert_snap_error(response, 400)
    assert "1,000" in response.json()["debug_message"]


def test_token_ttl_is_honoured_without_sleeping() -> None:
    clock = FakeClock()
    with running_emulator(clock=clock, token_ttl=5, rate_limit=0) as emulator:
        tokens = emulator.obtain_tokens()
        with bearer_client(emulator, tokens["access_token"]) as api:
            clock.advance(4.9)
            assert api.get("/v1/me").status_code == 200
            clock.advance(0.1)
            assert api.get("/v1/me").status_code == 401
