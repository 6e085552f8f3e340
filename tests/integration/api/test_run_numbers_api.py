"""Run numbers, the removal guard and ``--json`` through the API, the web UI and the CLI."""

from __future__ import annotations

import json
from typing import Any

import pytest

from audiencesync.control.models import Role
from audiencesync.profiles import store
from audiencesync.sync import runs
from tests.cli_runner import CliResult, run_cli
from tests.integration.api.conftest import Api, add_export_via_api, connect_via_api
from tests.integration.api.test_auth import sign_in
from tests.integration.api.test_web_pages import csrf_of
from tests.integration.sync.test_resilience import cli_env

EMAIL = "EMAIL_SHA256"
NO_GB = (
    "customer_id,email,phone,country,age\n"
    "1,Ann@Example.com ,+1 (415) 555-0101,US,34\n"
    "4,dora@example.net,+33 6 12 34 56 78,FR,62\n"
)


@pytest.fixture
def held(profiles: Api) -> tuple[Api, int, int]:
    """Export ``gb`` run once, then its segment emptied: (api, first run, held run)."""
    api = profiles
    connect_via_api(api, share=True)
    created = add_export_via_api(api, api.admin, name="gb", segments=["gb"])
    assert created.status_code == 201, created.text
    admin = api.actors[Role.ADMIN]
    first = runs.run_now(api.ctx, admin, "gb")
    assert first.status == "succeeded", first.errors
    (api.tmp_path / "customers.csv").write_text(NO_GB)
    store.refresh(api.ctx, admin, "customers")
    second = runs.run_now(api.ctx, admin, "gb")
    assert second.status == "needs_approval"
    return api, first.id, second.id


def test_a_held_run_is_approved_through_the_api(held: tuple[Api, int, int]) -> None:
    api, _, run_id = held
    audience = api.admin.get("/api/v1/exports/gb").json()["audience_id"]
    shown = api.viewer.get(f"/api/v1/runs/{run_id}").json()
    assert shown["status"] == "needs_approval"
    assert "segments now match nobody" in shown["message"]
    assert shown["counts"]["guard"]["held_removes"] == {"email": 1}
    assert api.viewer.post(f"/api/v1/runs/{run_id}/approve").status_code == 403
    assert len(api.emulator.members(audience, EMAIL)) == 1
    answer = api.contributor.post(f"/api/v1/runs/{run_id}/approve")
    assert answer.status_code == 202, answer.text
    approval = answer.json()
    assert approval["approves_run"] == run_id
    assert approval["status"] == "queued"
    assert api.admin.post(f"/api/v1/runs/{run_id}/approve").status_code == 409
    done = runs.run_pending(api.ctx, "test-worker")
    assert done is not None
    assert done.id == approval["id"]
    assert done.status == "succeeded", done.errors
    assert api.emulator.members(audience, EMAIL) == set()
    assert api.admin.get(f"/api/v1/runs/{run_id}").json()["status"] == "approved"


def test_a_held_run_is_dismissed_through_the_api(held: tuple[Api, int, int]) -> None:
    api, _, run_id = held
    audience = api.admin.get("/api/v1/exports/gb").json()["audience_id"]
    answer = api.admin.post(f"/api/v1/runs/{run_id}/dismiss")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "dismissed"
    assert len(api.emulator.members(audience, EMAIL)) == 1
    again = api.admin.post(f"/api/v1/runs/{run_id}/dismiss")
    assert again.status_code == 409
    assert "not waiting for approval" in again.json()["detail"]


def test_the_run_page_shows_the_guard_the_samples_and_one_csv(held: tuple[Api, int, int]) -> None:
    api, first, run_id = held
    browser, _ = sign_in(api, "admin")
    try:
        export_page = browser.get("/exports/gb").text
        # The save check: one of the four sampled emails is invalid, none is empty.
        assert (
            "email: 0 of 4 sampled rows empty (0.0%); 1 of the 4 values present invalid (25.0%)"
            in export_page
        )
        page = browser.get(f"/runs/{run_id}").text
        assert "segments now match nobody" in page
        assert "Approve removals" in page
        assert "Dismiss" in page
        first_page = browser.get(f"/runs/{first}").text
        assert f'href="/runs/{first}/rejects.csv"' in first_page
        assert "not an email" in first_page
        web_csv = browser.get(f"/runs/{first}/rejects.csv")
        api_csv = api.viewer.get(f"/api/v1/runs/{first}/rejects.csv")
        assert web_csv.status_code == api_csv.status_code == 200
        assert (
            web_csv.text
            == api_csv.text
            == ("profile_key,identifier_type,reason\n3,email,not_an_email\n")
        )
        assert api_csv.headers["content-type"].startswith("text/csv")
        # The dismiss button works from the page (with the form's CSRF token).
        token = csrf_of(browser, f"/runs/{run_id}")
        answer = browser.post(f"/runs/{run_id}/dismiss", data={"csrf_token": token})
        assert answer.status_code == 303
        assert api.admin.get(f"/api/v1/runs/{run_id}").json()["status"] == "dismissed"
    finally:
        browser.close()


def test_a_dry_run_shows_would_add_in_the_history(profiles: Api) -> None:
    api = profiles
    connect_via_api(api, share=True)
    assert add_export_via_api(api, api.admin, name="weekly").status_code == 201
    dry = runs.run_now(api.ctx, api.actors[Role.ADMIN], "weekly", dry_run=True)
    browser, _ = sign_in(api, "admin")
    try:
        history = browser.get("/exports/weekly").text
        assert "would add 3" in history
        run_page = browser.get(f"/runs/{dry.id}").text
        assert "Would add" in run_page
        assert "Added</th>" not in run_page
        assert 'id="requests"' not in run_page
    finally:
        browser.close()
    shown = api.admin.get(f"/api/v1/runs/{dry.id}").json()
    assert shown["counts"]["added"] == {}
    assert "requests" not in shown["counts"]


def _cli(api: Api, *args: str) -> CliResult:
    env = cli_env(api.ctx.settings)
    if api.ctx.settings.database_url:
        env["AUDIENCESYNC_DATABASE_URL"] = api.ctx.settings.database_url
    env["COLUMNS"] = ""  # not a terminal, no width given: as a script would run it
    return run_cli(*args, home=api.ctx.home, env=env)


def _json(api: Api, *args: str) -> Any:
    result = _cli(api, *args, "--json")
    assert result.code == 0, result.output
    return json.loads(result.stdout)


def test_every_list_and_show_prints_the_apis_json(held: tuple[Api, int, int]) -> None:
    api, first, run_id = held
    get = api.admin.get
    pairs: list[tuple[tuple[str, ...], str]] = [
        (("exports", "list"), "/api/v1/exports"),
        (("exports", "show", "gb"), "/api/v1/exports/gb"),
        (("runs", "list", "--export", "gb"), "/api/v1/runs?export=gb"),
        (("runs", "show", str(run_id)), f"/api/v1/runs/{run_id}"),
        (("runs", "show", str(first)), f"/api/v1/runs/{first}"),
        (("segments", "list"), "/api/v1/segments"),
        (("segments", "show", "gb"), "/api/v1/segments/gb"),
        (("profiles", "list"), "/api/v1/datasets"),
        (("profiles", "schema", "customers"), "/api/v1/datasets/customers"),
        (("profiles", "show", "customers"), "/api/v1/datasets/customers/sample?limit=20"),
        (("connections", "list"), "/api/v1/connections"),
        (("connections", "show", "Snap"), "/api/v1/connections/Snap"),
        (("users", "list"), "/api/v1/users"),
    ]
    for command, path in pairs:
        answer = get(path)
        assert answer.status_code == 200, (path, answer.text)
        assert _json(api, *command) == answer.json(), command
    export = _json(api, "exports", "show", "gb")
    assert export["max_removal_share"] == 0.2
    assert export["last_run_status"] == "needs_approval"
    run = _json(api, "runs", "show", str(run_id))
    assert run["status"] == "needs_approval"
    assert run["counts"]["planned_removes"] == {"email": 1}


def test_tables_written_to_a_pipe_are_not_cut_to_80_columns(held: tuple[Api, int, int]) -> None:
    api, _, _ = held
    result = _cli(api, "exports", "list")
    assert result.code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) > 80
    assert "…" not in result.stdout
    assert "needs_approval" in result.stdout


def test_the_maximum_removal_share_is_set_by_api_and_cli(held: tuple[Api, int, int]) -> None:
    api, _, _ = held
    changed = api.admin.patch("/api/v1/exports/gb", json={"max_removal_share": 0.5})
    assert changed.status_code == 200, changed.text
    assert changed.json()["max_removal_share"] == 0.5
    assert api.admin.patch("/api/v1/exports/gb", json={"max_removal_share": 2}).status_code == 422
    result = _cli(api, "exports", "update", "gb", "--max-removal-share", "0.35")
    assert result.code == 0, result.output
    assert _json(api, "exports", "show", "gb")["max_removal_share"] == 0.35
    refused = _cli(api, "exports", "update", "gb", "--max-removal-share", "1.5")
    assert refused.code != 0
    assert "is not a maximum removal share: give a number from 0 to 1" in refused.output
    assert "Traceback" not in refused.output
    assert api.admin.get("/api/v1/exports/gb").json()["max_removal_share"] == 0.35
