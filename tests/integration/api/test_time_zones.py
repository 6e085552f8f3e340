"""Each user's time zone (issue 14): chosen on the account page, through ``/me`` or the
CLI; pages show every time in it with its short name, the API stays in UTC."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from tests.integration.api.conftest import Api, add_export_via_api, connect_via_api
from tests.integration.api.test_auth import sign_in
from tests.integration.api.test_web_pages import csrf_of

PARIS = ZoneInfo("Europe/Paris")


def _in(moment_iso: str, zone: ZoneInfo) -> str:
    """How a page should say an API timestamp in ``zone``, computed with zoneinfo alone."""
    local = datetime.fromisoformat(moment_iso.replace("Z", "+00:00")).astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def _shown(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">([^<]*)', page)
    assert found is not None, element_id
    return found.group(1).strip()


def test_me_reads_and_sets_the_time_zone_and_the_api_stays_in_utc(api: Api) -> None:
    me = api.viewer.get("/api/v1/me").json()
    assert me["time_zone"] is None
    changed = api.viewer.patch("/api/v1/me", json={"time_zone": "europe/paris"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["time_zone"] == "Europe/Paris"
    assert api.viewer.get("/api/v1/me").json()["time_zone"] == "Europe/Paris"
    assert api.viewer.patch("/api/v1/me", json={}).json()["time_zone"] == "Europe/Paris"
    listed = {u["name"]: u["time_zone"] for u in api.viewer.get("/api/v1/users").json()}
    assert listed["victor"] == "Europe/Paris"
    assert listed["admin"] is None

    wrong = api.viewer.patch("/api/v1/me", json={"time_zone": "Paris"})
    assert wrong.status_code == 400
    assert wrong.json()["field"] == "time_zone"
    assert wrong.json()["detail"] == (
        "'Paris' is not a time zone: give time_zone an IANA name such as Europe/Paris, "
        "America/New_York or UTC, or leave it empty for UTC."
    )
    assert api.viewer.get("/api/v1/me").json()["time_zone"] == "Europe/Paris"  # unchanged

    # Whatever the caller's zone, every timestamp of the API is UTC.
    for token in api.viewer.get("/api/v1/me/tokens").json():
        assert token["created_at"].endswith(("Z", "+00:00")), token["created_at"]
    assert api.viewer.patch("/api/v1/me", json={"time_zone": None}).json()["time_zone"] is None


def test_a_user_in_paris_sees_run_and_schedule_times_in_paris_time(profiles: Api) -> None:
    connect_via_api(profiles, "Snap")
    assert add_export_via_api(profiles, profiles.admin).status_code == 201
    turned = profiles.admin.put(
        "/api/v1/schedule", json={"enabled": True, "cron": "0 3 * * *", "timezone": "Europe/London"}
    )
    assert turned.status_code == 200, turned.text
    queued = profiles.admin.post("/api/v1/exports/weekly/run")
    assert queued.status_code == 202, queued.text
    run = profiles.admin.get(f"/api/v1/runs/{queued.json()['id']}").json()
    export = profiles.admin.get("/api/v1/exports/weekly").json()
    assert export["next_run_at"].endswith(("Z", "+00:00"))  # fired in London, said in UTC

    browser, _ = sign_in(profiles, "victor")
    try:
        # No zone yet: UTC, as before; the account page offers the browser's zone.
        page = browser.get(f"/runs/{run['id']}").text
        assert f"<dt>Queued</dt><dd>{_in(run['queued_at'], ZoneInfo('UTC'))}</dd>" in page
        account = browser.get("/account").text
        assert re.search(r'<select id="time_zone" name="time_zone" data-browser-zone', account)
        assert "<option>Europe/Paris</option>" in account

        wrong = browser.post(
            "/account/time-zone",
            data={"csrf_token": csrf_of(browser, "/account"), "time_zone": "Mars/Base"},
        )
        assert wrong.status_code == 400
        shown = html.unescape(_shown(wrong.text, 'form-error" data-field="time_zone'))
        assert shown.startswith("'Mars/Base' is not a time zone: give time_zone an IANA name")

        saved = browser.post(
            "/account/time-zone",
            data={"csrf_token": csrf_of(browser, "/account"), "time_zone": "Europe/Paris"},
        )
        assert saved.status_code == 303
        account = browser.get("/account").text
        assert "Times are now shown in Europe/Paris." in account
        assert "<option selected>Europe/Paris</option>" in account
        assert "data-browser-zone" not in account

        page = browser.get(f"/runs/{run['id']}").text
        assert f"<dt>Queued</dt><dd>{_in(run['queued_at'], PARIS)}</dd>" in page
        assert " UTC</dd>" not in page
        # The cron keeps its own zone; its next time is said in the viewer's.
        expected = (
            f"with the system refresh, daily at 03:00 Europe/London, "
            f"next {_in(export['next_run_at'], PARIS)}"
        )
        assert _shown(browser.get("/exports/weekly").text, "schedule-words") == expected
        assert f'<td class="schedule-words">{expected}</td>' in browser.get("/exports").text
        assert _shown(browser.get("/settings/schedule").text, "schedule-words") == (
            f"daily at 03:00 Europe/London, next {_in(export['next_run_at'], PARIS)}"
        )
        panel = browser.get("/exports/weekly/runs-panel", headers={"HX-Request": "true"}).text
        assert _in(run["queued_at"], PARIS) in panel
    finally:
        browser.close()

    # The administrator chose no zone: the same moments, in UTC.
    admin, _ = sign_in(profiles, "admin")
    try:
        page = admin.get(f"/runs/{run['id']}").text
        assert f"<dt>Queued</dt><dd>{_in(run['queued_at'], ZoneInfo('UTC'))}</dd>" in page
        shown = _shown(admin.get("/exports/weekly").text, "schedule-words")
        assert shown == export["schedule_words"]
    finally:
        admin.close()
    assert datetime.fromisoformat(run["queued_at"]).utcoffset() == UTC.utcoffset(None)
