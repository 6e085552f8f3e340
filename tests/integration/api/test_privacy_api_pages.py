"""Privacy over HTTP: the /api/v1/privacy routes and the Admin > Privacy page.

No response ever carries an identifier given to an erasure or a hash of a list."""

from __future__ import annotations

import pytest

from audiencesync.control.models import Role
from audiencesync.identifiers import hash_value
from audiencesync.sync import runs
from audiencesync.types import IdentifierType
from tests.integration.api.conftest import Api, add_export_via_api, connect_via_api
from tests.integration.api.test_auth import sign_in
from tests.integration.api.test_web_pages import csrf_of

SQLITE_ONLY = pytest.mark.parametrize("database_url", [None], ids=["sqlite"])
# Members of load_profiles' ``everyone`` segment (tests/snap_helpers.py).
ANN = "Ann@Example.com"
BOB = "bob@example.org"


def hashed(value: str) -> str:
    found = hash_value(IdentifierType.EMAIL, value)
    assert found is not None
    return found


@SQLITE_ONLY
def test_suppression_lists_and_erasure_through_the_api(profiles: Api) -> None:
    api = profiles
    connect_via_api(api)
    made = add_export_via_api(api, api.admin, mode="add-only")
    assert made.status_code == 201, made.text
    audience = made.json()["audience_id"]
    admin = api.actors[Role.ADMIN]
    assert runs.run_now(api.ctx, admin, "weekly").status == "succeeded"
    assert hashed(BOB) in api.emulator.members(audience, "EMAIL_SHA256")

    files = {"file": ("optout.csv", f"{BOB.upper()}\nnot an email\n".encode(), "text/csv")}
    form = {"name": "optout", "type": "email", "exports": "weekly"}
    refused = api.contributor.post("/api/v1/privacy/suppression-lists/upload", data=form,
                                   files=files)  # fmt: skip
    assert refused.status_code == 403
    created = api.admin.post("/api/v1/privacy/suppression-lists/upload", data=form, files=files)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["size"], body["exports"], body["rejected"]) == (1, ["weekly"], {"not_an_email": 1})
    assert body["origin"] == "uploaded file optout.csv"
    missing = api.admin.post(
        "/api/v1/privacy/suppression-lists",
        json={"name": "x", "type": "email", "dataset": "customers", "column": "nope",
              "all_exports": True},
    )  # fmt: skip
    assert missing.status_code == 400
    assert "has no column 'nope'" in missing.json()["detail"]
    view = runs.run_now(api.ctx, admin, "weekly")
    assert view.counts["suppressed"] == {"email": 1}
    assert hashed(BOB) not in api.emulator.members(audience, "EMAIL_SHA256")
    shown = api.admin.get(f"/api/v1/runs/{view.id}").json()
    assert shown["counts"]["suppressed"] == {"email": 1}

    assert api.viewer.post("/api/v1/privacy/erasures", json={"emails": [ANN]}).status_code == 403
    bad = api.admin.post("/api/v1/privacy/erasures", json={"emails": ["not-an-email"]})
    assert bad.status_code == 400
    assert "the first email given is not a usable email" in bad.json()["detail"]
    assert "not-an-email" not in bad.text
    erased = api.admin.post("/api/v1/privacy/erasures", json={"emails": [ANN]})
    assert erased.status_code == 201, erased.text
    result = erased.json()
    assert result["status"] == "succeeded"
    assert result["exports"]["weekly"]["removed"] == {"email": 1}
    assert hashed(ANN) not in api.emulator.members(audience, "EMAIL_SHA256")
    assert api.admin.get("/api/v1/privacy/erasures").json()[0]["identifiers"] == {"email": 1}
    report = api.admin.get("/api/v1/privacy/report").json()
    assert {e["category"] for e in report["entries"]} >= {"dataset", "snapshot",
                                                          "suppression_list"}  # fmt: skip
    for _, text in api.recorder.responses:
        for secret in (hashed(ANN), hashed(BOB), ANN, ANN.lower(), BOB.upper()):
            assert secret not in text


@SQLITE_ONLY
def test_the_privacy_page_erases_and_shows_lists_to_administrators_only(profiles: Api) -> None:
    api = profiles
    connect_via_api(api)
    made = add_export_via_api(api, api.admin)
    audience = made.json()["audience_id"]
    admin = api.actors[Role.ADMIN]
    assert runs.run_now(api.ctx, admin, "weekly").status == "succeeded"
    browser, _ = sign_in(api, "admin")
    carol, _ = sign_in(api, "carol")
    try:
        assert carol.get("/privacy").status_code == 403
        assert 'href="/privacy"' not in carol.get("/exports").text
        assert 'href="/privacy"' in browser.get("/exports").text
        token = csrf_of(browser, "/privacy")
        added = browser.post(
            "/privacy/lists",
            data={"csrf_token": token, "name": "page-list", "type": "email", "applies": "all"},
            files={"file": ("list.txt", f"{BOB}\n".encode(), "text/plain")},
        )
        assert added.status_code == 303, added.text
        page = browser.get("/privacy").text
        assert 'data-list="page-list"' in page
        assert "uploaded file list.txt" in page
        answer = browser.post("/privacy/erase", data={"csrf_token": token, "emails": ANN + "\n"})
        assert answer.status_code == 200, answer.text
        assert 'data-export="weekly"' in answer.text
        assert ANN not in answer.text
        assert ANN.lower() not in answer.text
        assert hashed(ANN) not in api.emulator.members(audience, "EMAIL_SHA256")
        run = runs.run_now(api.ctx, admin, "weekly")
        assert run.counts["suppressed"] == {"email": 2}
        shown = browser.get(f"/runs/{run.id}").text
        assert "suppressed (lists and erasures, not sent): 2 email" in shown
        # A consent field set through the API shows on the export's page and form.
        bad = api.admin.patch("/api/v1/exports/weekly", json={"consent_field": "country"})
        assert bad.status_code == 400
        assert "give the values that mean consent" in bad.json()["detail"]
        patched = api.admin.patch(
            "/api/v1/exports/weekly", json={"consent_field": "country", "consent_values": ["us"]}
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["consent_values"] == ["us"]
        assert "only profiles whose country is us are sent" in browser.get("/exports/weekly").text
        assert 'value="country"' in browser.get("/exports/weekly/edit").text
        run = runs.run_now(api.ctx, admin, "weekly")
        assert run.counts["no_consent"] == 3  # the GB, GB and FR profiles
        assert "3 member(s) without consent (not sent)" in browser.get(f"/runs/{run.id}").text
    finally:
        browser.close()
        carol.close()


@SQLITE_ONLY
def test_an_erasure_waiting_for_a_run_names_the_button_not_a_command(profiles: Api) -> None:
    """An erasure that finds a run under way is pending; its note (in the API's JSON and
    on the page) tells how to finish it in the words of each: the page's button, never
    `audiencesync privacy erasures resume` (the recorder fails the test on any CLI word)."""
    api = profiles
    connect_via_api(api)
    assert add_export_via_api(api, api.admin).status_code == 201
    admin = api.actors[Role.ADMIN]
    assert runs.run_now(api.ctx, admin, "weekly").status == "succeeded"
    run_id = runs.request_run(api.ctx, admin, "weekly")
    assert runs.claim(api.ctx, "elsewhere", run_id=run_id) == run_id  # under way elsewhere
    erased = api.admin.post("/api/v1/privacy/erasures", json={"emails": [ANN]})
    assert erased.status_code == 201, erased.text
    item = erased.json()["exports"]["weekly"]
    assert item["status"] == "pending"
    assert item["message"] == (
        f"run {run_id} of the export was under way: the erasure is resumed once it ends; "
        "or use Resume the erasure on Admin › Privacy."
    )
    assert item["fix"]["kind"] == "resume_erasure"
    listed = api.admin.get("/api/v1/privacy/erasures").json()[0]["exports"]["weekly"]
    assert listed["message"] == item["message"]
    browser, _ = sign_in(api, "admin")
    try:
        token = csrf_of(browser, "/privacy")
        page = browser.post("/privacy/erase", data={"csrf_token": token, "emails": BOB + "\n"})
        assert page.status_code == 200, page.text
        assert "or use Resume the erasure on Admin › Privacy." in page.text
        assert "Resume the erasure</button>" in page.text
    finally:
        browser.close()
