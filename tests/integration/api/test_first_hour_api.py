"""The API and the pages say the same thing: errors by field and fix (never a flag), when an
export runs next, the audiences a connection can fill, a form error next to its field."""

from __future__ import annotations

import re

from tests.integration.api.conftest import Api, add_export_via_api, connect_via_api
from tests.integration.api.test_auth import sign_in
from tests.integration.api.test_web_pages import csrf_of


def test_an_api_error_names_its_field_and_its_fix_in_the_webs_words(profiles: Api) -> None:
    connect_via_api(profiles, "Snap")
    answer = add_export_via_api(profiles, profiles.admin, email_field=None)
    assert answer.status_code == 400
    body = answer.json()
    assert body["field"] == "email_field"
    assert "map the email field" in body["detail"]
    unknown = add_export_via_api(profiles, profiles.admin, segments=["nope"])
    assert unknown.json()["fix"]["kind"] == "list"
    assert unknown.json()["detail"].endswith("see the Segments page.")
    # (every response of this test is also scanned for flags by the api fixture)


def test_audiences_of_a_connection_and_schedule_words_match_the_page(profiles: Api) -> None:
    connect_via_api(profiles, "Snap")
    listed = profiles.emulator.create_segment_directly("Loyal customers")["id"]
    profiles.emulator.create_segment_directly("Pixel visitors", source_type="PIXEL")
    audiences = profiles.admin.get("/api/v1/connections/Snap/audiences").json()
    assert [(a["id"], a["used_by"]) for a in audiences] == [(listed, None)]
    made = add_export_via_api(profiles, profiles.admin, create_audience=False, audience_id=listed)
    assert made.status_code == 201, made.text
    again = profiles.admin.get("/api/v1/connections/Snap/audiences?search=LOYAL").json()
    assert [(a["id"], a["used_by"]) for a in again] == [(listed, "weekly")]
    assert profiles.viewer.get("/api/v1/connections/Snap/audiences").status_code == 403
    # Off by default: the words say so and nothing is due.
    export = profiles.admin.get("/api/v1/exports/weekly").json()
    assert export["schedule_words"] == "off: the system refresh is off (runs on demand only)"
    assert export["next_run_at"] is None
    turned = profiles.admin.put(
        "/api/v1/schedule",
        json={"enabled": True, "cron": "0 3 * * *", "timezone": "Europe/London"},
    )
    assert turned.status_code == 200, turned.text
    system = turned.json()
    export = profiles.admin.get("/api/v1/exports/weekly").json()
    assert export["next_run_at"] == system["next_run_at"]  # the system refresh's, not null
    assert export["schedule_words"].startswith("with the system refresh, daily at 03:00 ")
    browser, _ = sign_in(profiles, "admin")
    try:
        page = browser.get("/exports/weekly").text
        shown = re.search(r'<dd id="schedule-words">([^<]*)', page)
        assert shown is not None
        assert shown.group(1).strip() == export["schedule_words"]
        assert export["schedule_words"] in browser.get("/exports").text
        schedule_page = browser.get("/settings/schedule").text
        assert system["words"] in schedule_page
        assert 'id="last-refresh">never' in schedule_page  # turned on, nothing ran yet
        # The cron field in words as typed (htmx asks for them).
        words = browser.get("/settings/schedule/describe?cron=*/15+*+*+*+*&timezone=UTC").text
        assert "every 15 minutes UTC" in words
    finally:
        browser.close()


def test_a_form_error_sits_next_to_its_field_and_viewers_get_no_form(profiles: Api) -> None:
    connect_via_api(profiles, "Snap")
    browser, _ = sign_in(profiles, "admin")
    try:
        answer = browser.post(
            "/exports/new",
            data={
                "csrf_token": csrf_of(browser, "/exports/new"), "name": "x", "connection": "Snap",
                "dataset": "customers", "email_field": "email", "audience_choice": "create",
                "action": "save",
            },  # no segment ticked
        )  # fmt: skip
        assert answer.status_code == 400
        field_error = re.search(r'<p class="error field-error"[^>]*data-field="(\w+)"', answer.text)
        assert field_error is not None
        assert field_error.group(1) == "segments"
        # The one usable connection is chosen already; email mapped by its name.
        form = browser.get("/exports/new").text
        assert '<option value="Snap" selected>' in form
        assert re.search(r"<option selected>email</option>", form)
        # A taken connection name is refused before the Snapchat sign-in, at the field.
        taken = browser.post(
            "/connections/new",
            data={"csrf_token": csrf_of(browser, "/connections/new"), "name": "Snap",
                  "agree": "on", "access": "admins"},
        )  # fmt: skip
        assert taken.status_code == 409
        assert 'data-field="name"' in taken.text
    finally:
        browser.close()
    viewer, _ = sign_in(profiles, "victor")
    try:
        for path in ("/segments/new", "/exports/new"):
            page = viewer.get(path)
            assert page.status_code == 403, path
            assert '<form method="post" action="/segments/new"' not in page.text
            assert 'id="export-form"' not in page.text
    finally:
        viewer.close()


def test_a_rule_error_marks_its_builder_row(profiles: Api) -> None:
    browser, _ = sign_in(profiles, "admin")
    try:
        answer = browser.post(
            "/segments/new",
            data={
                "csrf_token": csrf_of(browser, "/segments/new"), "name": "bad",
                "dataset": "customers", "action": "save",
                "r.kind": "group", "r.join": "all",
                "r.0.kind": "condition", "r.0.field": "country", "r.0.op": "=", "r.0.value": "GB",
                "r.1.kind": "condition", "r.1.field": "age", "r.1.op": ">=", "r.1.value": "old",
            },
        )  # fmt: skip
        assert answer.status_code == 400, answer.text[:2000]
        marked = re.findall(r'class="rule-row invalid" data-path="([\w.]+)"', answer.text)
        assert marked == ["r.1"], answer.text[:3000]
        assert "fix the file" not in answer.text
    finally:
        browser.close()
