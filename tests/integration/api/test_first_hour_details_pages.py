"""Small things a new user meets in the first hour (review of issue 14, the lows): the
schedule says it ran only when it ran, a saved export says when it runs in the export's
own words, the export form starts in the user's zone, sentences read as English, and the
pages say "Mobile ad id" rather than "maid"."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from audiencesync.control.models import utcnow
from audiencesync.sync import scheduler
from tests.integration.api.conftest import Api, connect_via_api
from tests.integration.api.test_auth import sign_in
from tests.integration.api.test_web_pages import csrf_of

SQLITE_ONLY = pytest.mark.parametrize("database_url", [None], ids=["sqlite"])


@SQLITE_ONLY
def test_the_schedule_says_it_fired_only_once_it_ran(api: Api) -> None:
    body = {"enabled": True, "cron": "0 4 * * *", "timezone": "UTC"}
    saved = api.admin.put("/api/v1/schedule", json=body)
    assert saved.status_code == 200, saved.text
    assert saved.json()["last_fired_at"] is None
    assert api.viewer.get("/api/v1/schedule").json()["last_fired_at"] is None
    assert scheduler.tick(api.ctx, utcnow() + timedelta(days=2)).system_fired
    fired = api.viewer.get("/api/v1/schedule").json()["last_fired_at"]
    assert fired is not None
    # Turning it off and on again does not claim another firing.
    api.admin.put("/api/v1/schedule", json={**body, "enabled": False})
    again = api.admin.put("/api/v1/schedule", json=body).json()
    assert again["last_fired_at"] == fired


@SQLITE_ONLY
def test_a_saved_export_says_when_it_runs_and_the_form_starts_in_the_users_zone(
    profiles: Api,
) -> None:
    api = profiles
    connect_via_api(api)
    assert api.admin.patch("/api/v1/me", json={"time_zone": "Europe/Paris"}).status_code == 200
    browser, _ = sign_in(api, "admin")
    try:
        form = browser.get("/exports/new").text
        assert re.search(r'<input id="timezone" name="timezone" value="Europe/Paris"', form)
        saved = browser.post("/exports/new", data={
            "csrf_token": csrf_of(browser, "/exports/new"), "action": "save", "name": "weekly",
            "connection": "Snap", "audience_choice": "create", "audience_name": "weekly",
            "retention_days": "9999", "dataset": "customers", "email_field": "email",
            "segments": ["everyone"], "mode": "mirror", "max_removal_share": "20",
            "schedule": "system", "timezone": "Europe/Paris",
        })  # fmt: skip
        assert saved.status_code == 303, saved.text[:500]
        page = browser.get(saved.headers["location"]).text
        # The system refresh is off: the flash says so, as the export's page does.
        assert (
            "Export weekly was saved; it is off: the system refresh is off (runs on demand "
            "only). Run now runs it at once."
        ) in page
        assert "scheduled refresh" not in page
        # Nothing was sent yet: the confirmations speak of an unknown number, no "the an".
        assert "an unknown number of identifiers" in page
        assert "the an unknown" not in page
        assert "its an unknown" not in page
    finally:
        browser.close()


@SQLITE_ONLY
def test_breadcrumbs_numbers_and_words_on_the_privacy_and_unification_pages(
    profiles: Api,
) -> None:
    api = profiles
    browser, _ = sign_in(api, "admin")
    try:
        listing = browser.get("/unifications").text
        assert not re.search(r"›\s*</p>", listing), "a breadcrumb ends in a dangling ›"
        answer = browser.post("/unifications", data={
            "csrf_token": csrf_of(browser, "/unifications"), "name": "people",
            "sources": "customers:customer_id", "rules": "fields: [email\n",
        })  # fmt: skip
        assert answer.status_code == 400, answer.text[:300]
        assert "the Rules box is not valid YAML" in answer.text
        assert "the rules is" not in answer.text
        privacy = browser.get("/privacy").text
        for header in ("Identifiers", "Exports", "Items", "Bytes"):
            assert f'<th class="num">{header}</th>' in privacy, header
        assert '<option value="maid">Mobile ad id</option>' in privacy
        assert ">maid</option>" not in privacy
    finally:
        browser.close()
