"""Each resource of the API over the same services as the CLI, against the emulator."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx

from audiencesync.sync import runs
from tests.integration.api.conftest import Api, add_export_via_api, connect_via_api
from tests.snap_helpers import PROFILES_CSV


def test_datasets_upload_path_schema_sample_refresh_remove(api: Api) -> None:
    uploaded = api.contributor.post(
        "/api/v1/datasets/upload",
        files={"file": ("Customers 2026.csv", PROFILES_CSV.encode(), "text/csv")},
        data={"key": "customer_id"},
    )
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["name"] == "customers_2026"
    assert uploaded.json()["row_count"] == 4
    # The upload is kept in the home folder, so a refresh reads it again.
    assert api.contributor.post("/api/v1/datasets/customers_2026/refresh").status_code == 200
    source = api.tmp_path / "more.csv"
    source.write_text(PROFILES_CSV)
    by_path = api.admin.post(
        "/api/v1/datasets", json={"path": str(source), "key": "customer_id", "name": "more"}
    )
    # No AUDIENCESYNC_IMPORT_FOLDERS: the server reads no path (tests/security covers them).
    assert by_path.status_code == 403
    assert "AUDIENCESYNC_IMPORT_FOLDERS" in by_path.json()["detail"]
    with source.open("rb") as handle:
        more = api.admin.post(
            "/api/v1/datasets/upload",
            files={"file": ("more.csv", handle, "text/csv")},
            data={"key": "customer_id", "name": "more"},
        )
    assert more.status_code == 201, more.text
    schema = api.viewer.get("/api/v1/datasets/more/schema").json()
    assert {"name": "age", "type": "BIGINT"} in schema
    sample = api.viewer.get("/api/v1/datasets/more/sample", params={"limit": 2}).json()
    assert sample["columns"][0] == "customer_id"
    assert len(sample["rows"]) == 2
    assert [d["name"] for d in api.viewer.get("/api/v1/datasets").json()] == [
        "customers_2026",
        "more",
    ]
    assert api.admin.delete("/api/v1/datasets/more").status_code == 204
    assert api.admin.get("/api/v1/datasets/more").status_code == 404


def test_a_bad_upload_is_refused_in_plain_words_and_not_kept(api: Api) -> None:
    answer = api.admin.post(
        "/api/v1/datasets/upload",
        files={"file": ("people.csv", b"id,email\n1,a@b.c\n", "text/csv")},
        data={"key": "customer_id"},
    )
    assert answer.status_code == 400
    assert "customer_id" in answer.json()["detail"]
    assert not any((api.ctx.home / "uploads").glob("*/people.csv"))


def test_an_unknown_format_or_duplicate_policy_is_a_plain_400(api: Api) -> None:
    people = ("people.csv", b"id,email\n1,a@b.c\n", "text/csv")
    for field, value, expected in (
        ("format", "xml", "unknown format 'xml': use one of csv, parquet, json, ndjson."),
        ("on_duplicate_key", "x", "unknown on_duplicate_key 'x': use one of error, first, last."),
    ):
        answer = api.contributor.post(
            "/api/v1/datasets/upload", files={"file": people}, data={"key": "id", field: value}
        )
        assert answer.status_code == 400, answer.text
        assert answer.json() == {"detail": expected, "field": field}
        path = api.contributor.post(
            "/api/v1/datasets", json={"path": "/nowhere.csv", "key": "id", field: value}
        )
        assert path.status_code == 422
        assert f"'{field}'" in path.json()["detail"]
    assert not any((api.ctx.home / "uploads").rglob("people.csv"))
    assert api.contributor.get("/api/v1/datasets").json() == []


def test_segments_crud_count_preview_explain_sql_history(profiles: Api) -> None:
    client = profiles.contributor
    made = client.post(
        "/api/v1/segments",
        json={"name": "older_gb", "dataset": "customers", "description": "GB, 40+",
              "rules_text": "all:\n  - segment: gb\n  - {field: age, op: '>=', value: 40}\n"},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    assert made.json()["references"] == ["gb"]
    assert client.get("/api/v1/segments/older_gb/count").json()["size"] == 1
    preview = client.get("/api/v1/segments/older_gb/preview", params={"fields": ["email"]}).json()
    assert preview["size"] == 1
    assert preview["columns"] == ["customer_id", "email"]
    assert preview["rows"] == [{"customer_id": 2, "email": "bob@example.org"}]
    tree = client.get("/api/v1/segments/older_gb/explain").json()
    assert tree["label"] == "all of"
    assert tree["count"] == 1
    assert [c["count"] for c in tree["children"]] == [2, 2]
    sql = client.get("/api/v1/segments/older_gb/sql").json()["sql"]
    assert "SELECT" in sql.upper()
    history = client.get("/api/v1/segments/older_gb/history").json()
    assert [h["kind"] for h in history] == ["explain", "preview", "count"]
    # A segment in use cannot go; the message names who uses it.
    refused = client.delete("/api/v1/segments/gb")
    assert refused.status_code == 409
    assert "older_gb" in refused.json()["detail"]
    changed = client.patch(
        "/api/v1/segments/older_gb", json={"rules": {"field": "age", "op": ">", "value": 60}}
    )
    assert changed.json()["rules"] == {"field": "age", "op": ">", "value": 60}
    assert client.get("/api/v1/segments/schema").json()["title"] == "audiencesync segment rule"


def test_bad_rules_are_listed_in_plain_words(profiles: Api) -> None:
    answer = profiles.admin.post(
        "/api/v1/segments/validate",
        json={"dataset": "customers",
              "rules": {"all": [{"field": "contry", "op": "=", "value": "GB"},
                                {"field": "age", "op": "between", "value": [1]}]}},
    )  # fmt: skip
    assert answer.status_code == 400
    detail = answer.json()["detail"]
    assert "contry" in detail
    assert "country" in detail
    assert "between" in detail
    ok = profiles.viewer.post(
        "/api/v1/segments/validate",
        json={"dataset": "customers", "rules_text": "{field: country, op: '=', value: GB}"},
    )
    assert ok.json() == {"detail": "the rules are valid."}
    yaml_error = profiles.admin.post(
        "/api/v1/segments", json={"name": "x", "dataset": "customers", "rules_text": "all: [a"}
    )
    assert yaml_error.status_code == 400
    assert "YAML" in yaml_error.json()["detail"]


def test_a_connection_through_your_own_redirect_uri(api: Api) -> None:
    """A script catches the redirect itself and hands the code over."""
    redirect_uri = "http://127.0.0.1:9/script/callback"
    started = api.admin.post(
        "/api/v1/connections/authorizations", json={"redirect_uri": redirect_uri}
    ).json()
    assert started["redirect_uri"] == redirect_uri
    assert "Data privacy and compliance" in started["privacy_text"]
    with httpx.Client() as browser:
        approved = browser.get(started["authorization_url"])
    query = parse_qs(urlsplit(approved.headers["location"]).query)
    assert query["state"] == [started["state"]]
    no_consent = api.admin.post(
        "/api/v1/connections",
        json={"name": "Scripted", "agree": False, "state": started["state"],
              "code": query["code"][0]},
    )  # fmt: skip
    assert no_consent.status_code == 400
    assert "agreement" in no_consent.json()["detail"]
    made = api.admin.post(
        "/api/v1/connections",
        json={"name": "Scripted", "agree": True, "state": started["state"],
              "code": query["code"][0]},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    assert made.json()["consent_by"] == "admin"


def test_a_forged_or_reused_state_is_refused(api: Api) -> None:
    started = api.admin.post("/api/v1/connections/authorizations", json={}).json()
    with api.client() as browser:
        forged = browser.get("/api/v1/connections/callback", params={"code": "x", "state": "y"})
    assert forged.status_code == 403
    assert "start the authentication again" in forged.json()["detail"]
    refused = api.admin.post(
        "/api/v1/connections", json={"name": "S", "agree": True, "state": started["state"]}
    )
    assert refused.status_code == 400
    assert "has not come back yet" in refused.json()["detail"]
    connect = connect_via_api(api, "Once")
    assert connect["name"] == "Once"
    with api.client() as browser:
        denied = browser.get(
            "/api/v1/connections/callback",
            params={"error": "access_denied", "state": started["state"]},
        )
    assert denied.status_code == 403
    assert "did not grant access" in denied.json()["detail"]


def test_an_api_sign_in_comes_back_once(api: Api) -> None:
    """A replayed callback (or code) cannot overwrite the tokens of a finished sign-in."""
    started = api.admin.post("/api/v1/connections/authorizations", json={}).json()
    with httpx.Client() as snapchat:  # approved twice: two codes for the same state
        back = [snapchat.get(started["authorization_url"]).headers["location"] for _ in "12"]
    with api.client() as browser:
        assert browser.get(back[0]).status_code == 200
        replayed = browser.get(back[1])
    assert replayed.status_code == 403
    assert "already came back once" in replayed.json()["detail"]
    second_code = parse_qs(urlsplit(back[1]).query)["code"][0]
    with_code = api.admin.post(
        "/api/v1/connections",
        json={"name": "S", "agree": True, "state": started["state"], "code": second_code},
    )
    assert with_code.status_code == 403
    made = api.admin.post(
        "/api/v1/connections", json={"name": "S", "agree": True, "state": started["state"]}
    )
    assert made.status_code == 201, made.text


def test_reauth_access_and_removal_with_detach(profiles: Api) -> None:
    api = profiles
    connect_via_api(api, "Snap", share=True)
    assert add_export_via_api(api, api.contributor).status_code == 201
    started = api.admin.post("/api/v1/connections/authorizations", json={}).json()
    with api.client(follow_redirects=True) as browser:
        browser.get(started["authorization_url"])
    again = api.admin.post("/api/v1/connections/Snap/reauth", json={"state": started["state"]})
    assert again.status_code == 200
    assert again.json()["status"] == "active"
    shared = api.admin.put(
        "/api/v1/connections/Snap/access", json={"share_with_contributors": False}
    )
    assert shared.json()["shared_with_contributors"] is False
    refused = api.admin.delete("/api/v1/connections/Snap")
    assert refused.status_code == 409
    assert "weekly" in refused.json()["detail"]
    removed = api.admin.delete("/api/v1/connections/Snap", params={"detach": True}).json()
    assert removed == {"name": "Snap", "detached_exports": ["weekly"]}
    detached = api.admin.get("/api/v1/exports/weekly").json()
    assert detached["connection"] is None
    assert detached["state"].startswith("detached")
    run = api.admin.post("/api/v1/exports/weekly/run")
    assert run.status_code == 409
    assert "no connection" in run.json()["detail"]


def test_exports_runs_progress_cancel_clear(profiles: Api) -> None:
    api = profiles
    connect_via_api(api, "Snap", share=True)
    client = api.contributor
    made = add_export_via_api(api, client, audience_name="Everyone")
    assert made.status_code == 201, made.text
    export = made.json()
    assert export["audience_name"] == "Everyone"
    assert export["last_run_status"] is None
    assert export["validation"]["sampled_rows"] == 4
    # A wrong audience id is refused with what to do.
    wrong = add_export_via_api(api, client, "other", create_audience=False, audience_id="12345")
    assert wrong.status_code == 400
    assert "Audience Manager" in wrong.json()["detail"]
    assert wrong.json()["field"] == "audience_id"  # the form shows it next to that field
    # Run: queued by the API, executed by a worker, read back with counts and progress.
    queued = client.post("/api/v1/exports/weekly/run").json()
    assert queued["status"] == "queued"
    assert queued["trigger"] == "api"
    busy = client.post("/api/v1/exports/weekly/run")
    assert busy.status_code == 409
    assert "already has run" in busy.json()["detail"]
    done = runs.run_pending(api.ctx, "test-worker")
    assert done is not None
    assert done.status == "succeeded"
    shown = api.viewer.get(f"/api/v1/runs/{queued['id']}").json()
    assert shown["counts"]["members"] == 4
    assert shown["counts"]["added"] == {"email": 3}
    assert shown["audience"]["approximate_number_users"] is not None
    progress = api.viewer.get(f"/api/v1/runs/{queued['id']}/progress").json()
    assert progress["status"] == "succeeded"
    assert progress["done"] == progress["total"] == 3
    members = api.emulator.members(export["audience_id"])
    assert len(members) == 3
    # Dry run: counts, nothing sent.
    dry = client.post("/api/v1/exports/weekly/dry-run").json()
    assert runs.run_pending(api.ctx, "test-worker") is not None
    assert api.viewer.get(f"/api/v1/runs/{dry['id']}").json()["dry_run"] is True
    # Cancel a queued run.
    queued = client.post("/api/v1/exports/weekly/run", json={"full": True}).json()
    assert api.viewer.post(f"/api/v1/runs/{queued['id']}/cancel").status_code == 403
    cancelled = client.post(f"/api/v1/runs/{queued['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    history = api.viewer.get("/api/v1/exports/weekly/runs").json()
    assert [r["status"] for r in history] == ["cancelled", "succeeded", "succeeded"]
    assert (
        api.viewer.get("/api/v1/runs", params={"export": "weekly", "limit": 1}).json()[0]["id"]
        == queued["id"]
    )
    # Clear: confirm first.
    unconfirmed = client.post("/api/v1/exports/weekly/clear", json={"confirm": False})
    assert unconfirmed.status_code == 400
    assert client.post("/api/v1/exports/weekly/clear", json={"confirm": True}).status_code == 200
    assert api.emulator.members(export["audience_id"]) == set()


def test_exports_validate_duplicate_enable_remove(profiles: Api) -> None:
    api = profiles
    connect_via_api(api, "Snap")
    assert add_export_via_api(api, api.admin).status_code == 201
    checked = api.admin.post("/api/v1/exports/weekly/validate")
    assert checked.status_code == 200
    copy = api.admin.post("/api/v1/exports/weekly/duplicate", json={"new_name": "copy"}).json()
    assert copy["enabled"] is False
    assert copy["state"] == "disabled"
    assert api.admin.post("/api/v1/exports/copy/enable").json()["enabled"] is True
    missing_field = api.admin.patch("/api/v1/exports/copy", json={"email_field": "mail"})
    assert missing_field.status_code == 400
    assert "'mail'" in missing_field.json()["detail"]
    assert api.admin.delete("/api/v1/exports/copy").status_code == 204
    entries = api.viewer.get("/api/v1/audit", params={"target": "export:copy"}).json()
    assert [e["action"] for e in entries] == ["export.remove", "export.enable", "export.create"]
