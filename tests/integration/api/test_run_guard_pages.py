"""Older run records, approval runs and the CLI's exit codes and --json, as a user sees them."""

from __future__ import annotations

import json
import re

import duckdb
from sqlalchemy import update

from audiencesync.control.models import Role
from audiencesync.control.sync_models import Run
from audiencesync.sync import runs
from tests.integration.api.conftest import Api
from tests.integration.api.test_auth import sign_in
from tests.integration.api.test_run_numbers_api import _cli, _json
from tests.integration.api.test_run_numbers_api import held as held  # fixture

#: a run record written before counts v2: blanks counted as rejected "empty".
V1 = {
    "members": 7058,
    "identifiers": {"email": 7000},
    "rejected": {"email": {"empty": 7000, "not_an_email": 221}},
    "planned_adds": {"email": 13631},
    "planned_removes": {},
    "added": {"email": 13631},
    "removed": {},
    "resent": 0,
    "failed": 0,
    "requests": 3,
    "bytes_sent": 10,
    "seconds": {"sending": 1.0},
}


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_an_older_run_record_shows_no_figure_it_did_not_record(
    held: tuple[Api, int, int],
) -> None:
    api, first, _ = held
    with api.ctx.db.session() as session:
        session.execute(update(Run).where(Run.id == first).values(counts=V1))
    browser, _ = sign_in(api, "admin")
    try:
        page = browser.get(f"/runs/{first}")
        assert page.status_code == 200
        table = re.search(r'<table class="compact" id="counts">.*?</table>', page.text, re.S)
        assert table is not None
        row = re.search(r'<tr data-kind="email">.*?</tr>', table.group(0), re.S)
        assert row is not None
        cells = [c.strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(0), re.S)]
        # kind, present, empty, accepted, invalid, planned adds/removes, added, removed,
        # confirmed: the 7,000 blanks are empties, not invalid; unrecorded figures are —.
        assert cells == ["email", "—", "7,000", "—", "221", "13,631", "0", "13,631", "0", "—"]
        assert "Recorded by an older version" in page.text
        history = browser.get("/exports/gb")
        rows = re.findall(r'<tr class="run".*?</tr>', history.text, re.S)
        old = next(r for r in rows if f'href="/runs/{first}"' in r)
        assert "older version" in old
        cells = [_text(c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", old, re.S)]
        assert cells[8] == "221"  # rejected: 221, not 7,221
    finally:
        browser.close()
    shown = _cli(api, "runs", "show", str(first))
    assert shown.code == 0, shown.output
    assert "recorded by an older version" in shown.stdout
    assert "members: 7,058\n" in shown.stdout  # no "without any usable identifier: 0"


def test_an_approval_run_shows_no_member_figures_and_updates_held(
    held: tuple[Api, int, int],
) -> None:
    api, _, run_id = held
    approval = runs.approve_now(api.ctx, api.actors[Role.ADMIN], run_id)
    assert approval.status == "succeeded"
    shown = _cli(api, "runs", "show", str(approval.id))
    assert shown.code == 0, shown.output
    assert "members:" not in shown.stdout
    assert "sends the removals held by run" in shown.stdout
    export = _json(api, "exports", "show", "gb")
    members = api.emulator.members(export["audience_id"], "EMAIL_SHA256")
    assert export["identifiers_held"] == len(members) == 0
    browser, _ = sign_in(api, "admin")
    try:
        page = browser.get(f"/runs/{approval.id}")
        assert 'id="members"' not in page.text
    finally:
        browser.close()


def test_exports_run_exits_11_when_held(held: tuple[Api, int, int]) -> None:
    api, _, _ = held
    again = _cli(api, "exports", "run", "gb")  # plans again: still held, not a failure
    assert again.code == 11, again.output
    assert "needs_approval" in again.stdout
    assert "audiencesync runs approve" in again.stdout


def test_sources_and_audience_print_the_apis_json(held: tuple[Api, int, int]) -> None:
    api, _, _ = held
    path = api.tmp_path / "crm.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE people AS SELECT 1 AS id")
    added = api.admin.post("/api/v1/sources", json={"name": "crm", "url": f"duckdb:///{path}"})
    assert added.status_code == 201, added.text
    assert _json(api, "sources", "list") == api.admin.get("/api/v1/sources").json()
    assert _json(api, "sources", "show", "crm") == api.admin.get("/api/v1/sources/crm").json()
    read = _json(api, "exports", "audience", "gb")
    assert read == api.admin.get("/api/v1/exports/gb").json()
    assert json.dumps(read).count("gb") >= 1
