"""Simulated matching: upload_status, approximate_number_users, targetable_status."""

from __future__ import annotations

from audiencesync.emulator.testing import running_emulator
from tests.integration.emulator.helpers import (
    FakeClock,
    bearer_client,
    create_segment,
    hashes,
    segment,
    users_body,
)


def test_processing_then_complete_with_the_match_rate() -> None:
    clock = FakeClock()
    with running_emulator(clock=clock, processing_seconds=30, match_rate=0.5, rate_limit=0) as emu:
        api = bearer_client(emu, emu.obtain_tokens()["access_token"])
        with api:
            segment_id = create_segment(api, emu)
            shown = segment(api, segment_id)
            assert (shown["upload_status"], shown["targetable_status"]) == (
                "NO_UPLOAD",
                "NOT_READY",
            )
            api.post(f"/v1/segments/{segment_id}/users", json=users_body(hashes(3000)))
            shown = segment(api, segment_id)
            assert (shown["upload_status"], shown["targetable_status"]) == (
                "PROCESSING",
                "NOT_READY",
            )
            assert shown["approximate_number_users"] == 0
            clock.advance(30)
            shown = segment(api, segment_id)
            assert shown["upload_status"] == "COMPLETE"
            assert shown["approximate_number_users"] == 1500
            assert shown["targetable_status"] == "READY"

            # Removing users is an upload too; below 1,000 matched it is too few.
            api.request(
                "DELETE",
                f"/v1/segments/{segment_id}/users",
                json=users_body(hashes(3000)[:1200]),
            )
            assert segment(api, segment_id)["upload_status"] == "PROCESSING"
            assert emu.complete_matching() == 1
            shown = segment(api, segment_id)
            assert shown["approximate_number_users"] == 900
            assert shown["targetable_status"] == "TOO_FEW_USERS"


def test_threshold_and_rounding_with_no_processing_delay() -> None:
    with running_emulator(match_rate=0.7, rate_limit=0) as emu:
        api = bearer_client(emu, emu.obtain_tokens()["access_token"])
        with api:
            small, big = create_segment(api, emu, "small"), create_segment(api, emu, "big")
            api.post(f"/v1/segments/{small}/users", json=users_body(hashes(1428)))
            api.post(f"/v1/segments/{big}/users", json=users_body(hashes(1429)))
            # Schemas add up: an email and a phone count as two uploaded identifiers.
            api.post(f"/v1/segments/{big}/users", json=users_body(hashes(1, "p"), "PHONE_SHA256"))
            assert segment(api, small)["approximate_number_users"] == 1000  # round(999.6)
            assert segment(api, small)["targetable_status"] == "READY"
            assert segment(api, big)["approximate_number_users"] == 1001
            emu.set_settings(match_rate=0.1)
            api.delete(f"/v1/segments/{big}/all_users")
            shown = segment(api, big)
            assert (shown["approximate_number_users"], shown["targetable_status"]) == (
                0,
                "TOO_FEW_USERS",
            )
            assert shown["upload_status"] == "COMPLETE"
