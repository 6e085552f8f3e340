"""The audience of an export over the API and on its page: held, matched, match rate,
readings, drift and the replace repair."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from audiencesync.cli import exports as cli_exports
from audiencesync.control.models import Role, utcnow
from audiencesync.control.sync_models import ExportLease
from audiencesync.sync import exports, runs
from audiencesync.sync.snapshot import Snapshot
from tests.integration.api.conftest import Api, add_export_via_api, connect_via_api
from tests.integration.api.test_auth import sign_in
from tests.integration.api.test_web_pages import csrf_of
from tests.integration.emulator.helpers import bearer_client, hashes, users_body

MATCH_RATE = 0.7  # the emulator's default


def test_the_export_model_reports_held_matched_and_match_rate_and_reads_on_request(
    profiles: Api,
) -> None:
    api = profiles
    connect_via_api(api, "Snap", share=True)
    assert add_export_via_api(api, api.contributor).status_code == 201
    fresh = api.viewer.get("/api/v1/exports/weekly").json()
    assert fresh["identifiers_held"] is None
    assert fresh["approximate_number_users"] is None
    assert fresh["match_rate"] is None
    assert fresh["drift"] is None
    api.emulator.set_settings(processing_seconds=600)
    queued = api.contributor.post("/api/v1/exports/weekly/run").json()
    done = runs.run_pending(api.ctx, "test-worker")
    assert done is not None
    assert done.status == "succeeded"
    pending = api.viewer.get("/api/v1/exports/weekly").json()
    audience_id = pending["audience_id"]
    held = sum(api.emulator.member_counts(audience_id).values())
    assert pending["identifiers_held"] == held == 3
    assert pending["upload_status"] == "PROCESSING"
    assert pending["match_rate"] is None  # no rate from a size Snapchat has not matched
    assert pending["audience_read_at"] is not None
    api.emulator.complete_matching()
    assert api.viewer.post("/api/v1/exports/weekly/audience").status_code == 403
    read = api.contributor.post("/api/v1/exports/weekly/audience")
    assert read.status_code == 200, read.text
    export = read.json()
    assert export["upload_status"] == "COMPLETE"
    assert export["approximate_number_users"] == round(held * MATCH_RATE)
    assert export["match_rate"] == round(held * MATCH_RATE) / held
    assert export["targetable_status"] == "TOO_FEW_USERS"
    readings = api.viewer.get("/api/v1/exports/weekly/readings").json()
    assert [(r["trigger"], r["upload_status"], r["run_id"]) for r in readings] == [
        ("run", "PROCESSING", queued["id"]),
        ("on_demand", "COMPLETE", queued["id"]),
    ]
    assert readings[-1]["identifiers_held"] == held
    assert readings[-1]["match_rate"] == export["match_rate"]


def test_a_drifted_audience_shows_on_the_page_and_a_replace_from_the_page_repairs_it(
    profiles: Api,
) -> None:
    api = profiles
    connect_via_api(api, "Snap", share=True)
    assert add_export_via_api(api, api.contributor).status_code == 201
    api.contributor.post("/api/v1/exports/weekly/run")
    assert runs.run_pending(api.ctx, "test-worker") is not None
    audience_id = api.viewer.get("/api/v1/exports/weekly").json()["audience_id"]
    with bearer_client(api.emulator, api.emulator.obtain_tokens()["access_token"]) as other:
        other.post(f"/v1/segments/{audience_id}/users", json=users_body(hashes(100, "x")))
    drifted = api.contributor.post("/api/v1/exports/weekly/audience").json()
    assert drifted["drift"]["rule"] == "more_users_than_identifiers"
    assert drifted["drift"]["identifiers_held"] == 3
    assert drifted["drift"]["approximate_number_users"] == round(103 * MATCH_RATE)
    browser, _ = sign_in(api, "carol")
    try:
        page = browser.get("/exports/weekly").text
        assert "Audience may have drifted" in page
        assert "holds only 3 identifiers" in page
        unconfirmed = browser.post(
            "/exports/weekly/replace", data={"csrf_token": csrf_of(browser, "/exports/weekly")}
        )
        assert unconfirmed.status_code == 303
        assert api.viewer.get("/api/v1/exports/weekly/runs").json()[0]["replace"] is False
        queued = browser.post(
            "/exports/weekly/replace",
            data={"csrf_token": csrf_of(browser, "/exports/weekly"), "confirm": "on"},
        )
        assert queued.status_code == 303
        run = api.viewer.get("/api/v1/exports/weekly/runs").json()[0]
        assert run["replace"] is True
        assert run["status"] == "queued"
        done = runs.run_pending(api.ctx, "test-worker")
        assert done is not None
        assert done.status == "succeeded", done.errors
        assert sum(api.emulator.member_counts(audience_id).values()) == 3
        repaired = api.viewer.get("/api/v1/exports/weekly").json()
        assert repaired["drift"] is None
        assert repaired["identifiers_held"] == 3
        assert "Audience may have drifted" not in browser.get("/exports/weekly").text
        # The run says it emptied the audience first (what it held then), then added.
        assert done.counts["emptied_held"] == 3  # held before: the 3 sent, not the 100 extra
        run_page = browser.get(f"/runs/{done.id}").text
        assert "this run emptied the audience (it held 3 identifiers), then added 3" in run_page
    finally:
        browser.close()
    # The API asks for a replace the same way, confirmed like a clear.
    unconfirmed = api.contributor.post("/api/v1/exports/weekly/run", json={"replace": True})
    assert unconfirmed.status_code in (400, 422), unconfirmed.text
    assert "confirm" in unconfirmed.json()["detail"]
    api_replace = api.contributor.post(
        "/api/v1/exports/weekly/run", json={"replace": True, "confirm": True}
    )
    assert api_replace.status_code == 202
    assert api_replace.json()["replace"] is True


def test_a_failed_clear_shows_held_unknown_with_its_reason_in_the_api_and_on_the_page(
    profiles: Api,
) -> None:
    api = profiles
    connect_via_api(api, "Snap", share=True)
    assert add_export_via_api(api, api.contributor).status_code == 201
    api.contributor.post("/api/v1/exports/weekly/run")
    done = runs.run_pending(api.ctx, "test-worker")
    assert done is not None
    assert done.status == "succeeded", done.errors
    before = api.viewer.get("/api/v1/exports/weekly").json()
    assert before["identifiers_held"] == 3
    assert before["identifiers_held_unknown"] is None
    # Snapchat empties the audience but the answer is lost: the clear fails.
    api.emulator.set_faults(drop_after=1.0, only_kinds=["remove_all_users"])
    cleared = api.contributor.post("/api/v1/exports/weekly/clear", json={"confirm": True})
    api.emulator.clear_faults()
    assert cleared.status_code >= 400, cleared.text
    assert sum(api.emulator.member_counts(before["audience_id"]).values()) == 0
    after = api.viewer.get("/api/v1/exports/weekly").json()
    assert after["identifiers_held"] is None  # not the 3 from before
    assert "clear" in after["identifiers_held_unknown"]
    assert "failed" in after["identifiers_held_unknown"]
    assert after["match_rate"] is None or after["identifiers_held_at_reading"] == 3
    browser, _ = sign_in(api, "carol")
    try:
        page = browser.get("/exports/weekly").text
    finally:
        browser.close()
    assert 'id="held-unknown"' in page
    assert after["identifiers_held_unknown"] in page


def _matched(api: Api) -> tuple[str, int]:
    """A run, then a completed reading: (audience id, matched users reported)."""
    connect_via_api(api, "Snap", share=True)
    assert add_export_via_api(api, api.contributor).status_code == 201
    api.contributor.post("/api/v1/exports/weekly/run")
    assert runs.run_pending(api.ctx, "test-worker") is not None
    api.emulator.complete_matching()
    read = api.contributor.post("/api/v1/exports/weekly/audience").json()
    assert read["upload_status"] == "COMPLETE"
    assert read["approximate_number_users"] == round(3 * MATCH_RATE) > 0
    return read["audience_id"], read["approximate_number_users"]


def test_after_a_clear_the_api_page_and_cli_report_no_size_from_before_it(
    profiles: Api,
) -> None:
    """The API said "2 matched users, PROCESSING" beside held 0 where the CLI and the page
    said "pending": all three now read the same summary."""
    api = profiles
    audience_id, _ = _matched(api)
    api.emulator.set_settings(processing_seconds=600)  # the clear's own reading: matching
    cleared = api.contributor.post("/api/v1/exports/weekly/clear", json={"confirm": True})
    assert cleared.status_code == 200, cleared.text
    assert sum(api.emulator.member_counts(audience_id).values()) == 0
    shown = api.viewer.get("/api/v1/exports/weekly").json()
    assert shown["identifiers_held"] == 0
    # Snapchat still reports the size from before the clear while it matches: not shown.
    assert shown["approximate_number_users"] is None
    assert shown["approximate_number_users_pending"] is True
    assert shown["match_rate"] is None
    # The CLI's text (the same summary) and the page say pending too.
    view = exports.get_export(api.ctx, api.actors[Role.ADMIN], "weekly")
    lines = cli_exports.audience_lines("weekly", view.audience)
    assert any("matched size pending" in line for line in lines), lines
    browser, _ = sign_in(api, "carol")
    try:
        page = browser.get("/exports/weekly").text
    finally:
        browser.close()
    matched = re.search(r'<dd id="matched-users">(.*?)</dd>', page, re.S)
    assert matched is not None
    assert matched.group(1).startswith("pending"), matched.group(1)
    # Once Snapchat has matched the emptied audience, its size is reported again.
    api.emulator.complete_matching()
    again = api.contributor.post("/api/v1/exports/weekly/audience").json()
    assert again["approximate_number_users"] == 0
    assert again["approximate_number_users_pending"] is False


def test_while_a_replace_is_half_done_held_is_unknown_in_the_api_page_and_cli(
    profiles: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replace killed between emptying the audience and resetting the snapshot: the
    stored held figure and the reading before it are not claimed anywhere, and once the
    run's lease has expired it shows as interrupted, not running."""
    api = profiles
    audience_id, matched_before = _matched(api)

    class Killed(BaseException):
        """Stands for SIGKILL: no status is written after it."""

    def killed(_self: Snapshot) -> None:
        raise Killed()

    monkeypatch.setattr(Snapshot, "reset", killed)
    with pytest.raises(Killed):
        runs.run_now(api.ctx, api.actors[Role.ADMIN], "weekly", replace=True, confirm=True)
    monkeypatch.undo()
    assert sum(api.emulator.member_counts(audience_id).values()) == 0

    def assert_unknown(shown: dict[str, Any]) -> None:
        assert shown["identifiers_held"] is None
        assert "emptying" in shown["identifiers_held_unknown"]
        assert shown["approximate_number_users"] is None  # not the matched size before
        assert shown["approximate_number_users_pending"] is True
        assert shown["match_rate"] is None
        assert shown["upload_status"] is None

    # The run's lease is still live: it shows running, but nothing held is claimed.
    running = api.viewer.get("/api/v1/exports/weekly").json()
    assert running["last_run_status"] == "running"
    assert_unknown(running)
    view = exports.get_export(api.ctx, api.actors[Role.ADMIN], "weekly")
    lines = cli_exports.audience_lines("weekly", view.audience)
    assert lines[0].startswith("identifiers held: unknown ("), lines
    assert not any(f"{matched_before:,} matched" in line for line in lines), lines
    browser, _ = sign_in(api, "carol")
    try:
        page = browser.get("/exports/weekly").text
    finally:
        browser.close()
    held = re.search(r'<dd id="identifiers-held">(.*?)</dd>', page, re.S)
    assert held is not None
    assert "unknown" in held.group(1), held.group(1)
    # The worker died: once its lease has expired the export shows the run interrupted.
    with api.ctx.db.session() as session:
        session.execute(update(ExportLease).values(expires_at=utcnow() - timedelta(seconds=1)))
    expired = api.viewer.get("/api/v1/exports/weekly").json()
    assert expired["last_run_status"] == "interrupted"
    assert_unknown(expired)
    # The next run finishes the emptying; held is what Snapchat holds again.
    api.contributor.post("/api/v1/exports/weekly/run")
    done = runs.run_pending(api.ctx, "test-worker")
    assert done is not None
    assert done.status == "succeeded", done.errors
    settled = api.viewer.get("/api/v1/exports/weekly").json()
    assert settled["identifiers_held"] == sum(api.emulator.member_counts(audience_id).values())
