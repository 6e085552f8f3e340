"""The seed's screens in a real browser: admin, contributor and viewer, in that order.

The tests share one server and build on each other (module-scoped ``stack``): the admin
adds users and connections, the contributor uses the shared connection, the viewer sees it
all read-only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from audiencesync.control.models import Role
from audiencesync.control.permissions import Actor
from audiencesync.sync import exports, runs
from tests.conftest import PASSWORD
from tests.e2e.browser.conftest import Stack, User
from tests.snap_helpers import PROFILES_CSV

pytestmark = [pytest.mark.browser, pytest.mark.slow]
READER = Actor(id=0, name="test", role=Role.VIEWER)


def chart_data(page: Any) -> dict[str, Any]:
    """What Chart.js holds for the export page's two charts (not what the server sent)."""
    result: dict[str, Any] = page.evaluate(
        """() => {
            const a = Chart.getChart(document.getElementById("audience-chart")).data;
            const r = Chart.getChart(document.getElementById("runs-chart")).data;
            return {
                audience: {labels: a.labels, held: a.datasets[0].data,
                           matched: a.datasets[1].data,
                           rate: a.datasets[2].data.filter((v) => v !== null)},
                runs: {labels: r.labels, added: r.datasets[0].data, removed: r.datasets[1].data},
            };
        }"""
    )
    return result


def add_connection(admin: User, name: str, *, shared: bool, step: str) -> None:
    """Admin > Connections > Add connection > Snapchat, the seed's steps."""
    page = admin.page
    page.goto("/connections")
    page.click("#add-connection")
    page.fill("#display-name", name)
    if shared:
        page.check("#access-contributors")
    page.check("#agree")
    admin.shot(f"{step}-1-consent")
    page.click("#authenticate")
    # Snapchat's (the emulator's) authorize page: the user approves.
    page.wait_for_selector("#approve")
    assert "Authorize" in page.content()
    admin.shot(f"{step}-2-snapchat-authorize")
    page.click("#approve")
    page.wait_for_selector("#authenticated")
    assert page.url.endswith("/connections/new/save")
    page.check("#export-user")
    admin.shot(f"{step}-3-export-user")
    page.click("#save-connection")
    page.wait_for_selector(f"article.connection[data-name='{name}']")


def test_admin_adds_users_and_connections_and_shares_one(browser: Any, stack: Stack) -> None:
    admin = User(browser, stack, "admin")
    try:
        admin.page.goto("/exports")
        assert "/login" in admin.page.url
        admin.shot("01-sign-in")
        admin.sign_in()
        page = admin.page
        # Admin > Users: a contributor and a viewer.
        page.goto("/users")
        for name, role in (("carol", "contributor"), ("victor", "viewer")):
            page.fill("form[action='/users'] input[name=name]", name)
            page.select_option("#new-role", role)
            page.fill("form[action='/users'] input[name=password]", PASSWORD)
            page.click("form[action='/users'] button[type=submit]")
            page.wait_for_selector(f"text=User {name} was added")
        admin.shot("02-users")
        # Two connections: one for administrators only, one then shared with contributors.
        add_connection(admin, "Snapchat Internal", shared=False, step="03-connection-internal")
        add_connection(admin, "Snapchat EU", shared=False, step="04-connection-eu")
        card = page.locator("article.connection[data-name='Snapchat EU']")
        card.locator("select[name=access]").select_option("contributors")
        card.locator("button", has_text="Set who can use it").click()
        page.wait_for_selector("text=can now be used by administrators and contributors")
        assert "Administrators and contributors" in card.locator(".access").inner_text()
        assert "Emulated Ad Account" in card.inner_text()
        admin.shot("05-connections-shared")
        # Settings > Schedule.
        page.goto("/settings/schedule")
        page.check("input[name=enabled]")
        page.fill("#cron", "0 3 * * *")
        page.click("form[action='/settings/schedule'] button[type=submit]")
        page.wait_for_selector("text=The refresh schedule was saved")
        assert page.inner_text("#schedule-state") == "on"
        admin.shot("06-schedule")
        assert not admin.console_errors, admin.console_errors
    finally:
        admin.close()


def test_contributor_segments_exports_and_runs(browser: Any, stack: Stack, tmp_path: Path) -> None:
    carol = User(browser, stack, "carol")
    try:
        carol.sign_in()
        page = carol.page
        # Only the connection shared with contributors, by name and type.
        page.goto("/connections")
        cards = page.locator("article.connection")
        assert cards.count() == 1
        assert cards.first.get_attribute("data-name") == "Snapchat EU"
        assert page.locator("#add-connection").count() == 0
        carol.shot("11-contributor-connections")
        # Profiles: upload a file.
        source = tmp_path / "customers.csv"
        source.write_text(PROFILES_CSV)
        page.goto("/profiles")
        page.set_input_files("#file", str(source))
        page.fill("#key", "customer_id")
        page.fill("#name", "customers")
        page.click("form[action='/profiles/import'] button[type=submit]")
        page.wait_for_selector("#sample")
        assert "Imported 4 profiles" in page.content()
        carol.shot("12-profiles")
        # Segments: the rule builder, two conditions joined by AND.
        page.goto("/segments/new")
        page.fill("#segment-name", "reachable")
        page.select_option("select[name='r.0.field']", "age")
        page.select_option("select[name='r.0.op']", ">=")
        page.fill("input[name='r.0.value']", "18")
        page.click("button[value='add-condition:r']")
        page.wait_for_selector("select[name='r.1.field']")
        assert page.input_value("input[name='r.0.value']") == "18"
        page.select_option("select[name='r.1.field']", "email")
        page.select_option("select[name='r.1.op']", "contains")
        page.fill("input[name='r.1.value']", "@")
        carol.shot("13-rule-builder")
        page.click("#save-segment")
        page.wait_for_selector("#explain-total")
        assert page.inner_text("#explain-total") == "3"
        counts = page.locator("ul.tree .count").all_inner_texts()
        assert counts == ["3", "4", "3"]
        page.click("#preview-button")
        page.wait_for_selector("#preview-table")
        carol.shot("14-segment")
        page.goto("/segments")
        assert page.inner_text("#size-reachable").strip() == "3"
        # Data > Exports > Add destination.
        page.goto("/exports")
        page.click("#add-export")
        options = page.locator("#connection option").all_inner_texts()
        assert [o for o in options if o.startswith("Snapchat")] == ["Snapchat EU"]
        page.fill("#export-name", "weekly")
        page.select_option("#connection", "Snapchat EU")
        page.check("#create-audience")
        page.fill("#audience-name", "Reachable customers")
        page.select_option("#email_field", "email")
        # The form maps phone-like columns by itself; the seed's flow sends emails only.
        page.select_option("#phone_field", "")
        page.check("#segment-choices input[value=reachable]")
        carol.shot("15-export-form")
        page.click("#save-export")
        page.wait_for_selector("#export-actions")
        assert "was saved" in page.content()
        assert page.locator("tr.run").count() == 0  # saving does not run it
        # Run now: queued, run by the server's worker, progress polled, then the counts.
        page.click("#export-actions button:has-text('Run now')")
        page.wait_for_selector("tr.run[data-status=succeeded]", timeout=60_000)
        row = page.locator("tr.run").first
        assert row.locator("td.added").inner_text() == "3"
        # Read the audience again from the page, then check what the charts draw (Chart.js's
        # own data) against the stored readings and runs and against the emulator.
        page.click("#export-actions button:has-text('Read audience now')")
        page.wait_for_selector("#audience-chart")
        assert "matched users" in page.content()
        drawn = chart_data(page)
        ctx = stack.open_context()
        try:
            readings = runs.export_readings(ctx, READER, "weekly")
            history = [r for r in runs.list_runs(ctx, READER, export="weekly") if not r.dry_run]
            shown = exports.get_export(ctx, READER, "weekly")
        finally:
            ctx.close()
        assert len(readings) == 2  # the run's own, and the one just asked for
        assert drawn["audience"]["held"] == [r.identifiers_held for r in readings]
        assert drawn["audience"]["matched"] == [r.approximate_number_users for r in readings]
        assert drawn["audience"]["rate"] == [
            pytest.approx(r.approximate_number_users / r.identifiers_held * 100, abs=0.01)
            for r in readings
            if r.approximate_number_users is not None and r.identifiers_held
        ]
        assert shown.audience is not None
        audience_id = shown.audience_id
        held = sum(stack.emulator.member_counts(audience_id).values())
        assert readings[-1].identifiers_held == held == 3
        assert readings[-1].approximate_number_users == round(3 * 0.7)
        assert drawn["runs"]["labels"] == [f"run {r.id}" for r in reversed(history)]
        assert drawn["runs"]["added"] == [3]
        assert drawn["runs"]["removed"] == [0]
        assert page.inner_text("#identifiers-held").startswith("3")
        assert page.inner_text("#match-rate") == f"{2 / 3 * 100:.1f}%"
        carol.shot("16-export-run-and-chart")
        page.click("tr.run a")
        page.wait_for_selector("h1:has-text('Run')")
        assert re.search(r"Members\s+3", page.inner_text("dl.facts"))
        carol.shot("17-run")
        assert not carol.console_errors, carol.console_errors
    finally:
        carol.close()


def _change_forms(user: User) -> list[str]:
    """Actions of the forms on the page that change something (sign-out aside)."""
    forms = user.page.locator("form[method=post]")
    actions = [forms.nth(i).get_attribute("action") or "" for i in range(forms.count())]
    return [a for a in actions if a != "/logout"]


def test_viewer_sees_everything_read_only(browser: Any, stack: Stack) -> None:
    victor = User(browser, stack, "victor")
    try:
        victor.sign_in()
        page = victor.page
        pages = {
            "21-viewer-exports": "/exports",
            "22-viewer-export": "/exports/weekly",
            "23-viewer-connections": "/connections",
            "24-viewer-segments": "/segments",
            "25-viewer-segment": "/segments/reachable",
            "26-viewer-profiles": "/profiles/customers",
            "27-viewer-users": "/users",
            "28-viewer-schedule": "/settings/schedule",
            "29-viewer-audit": "/audit",
        }
        for step, path in pages.items():
            page.goto(path)
            assert _change_forms(victor) == [], (path, _change_forms(victor))
            assert page.locator("a.button:has-text('Edit'), #add-export, #new-segment").count() == 0
            victor.shot(step)
        page.goto("/exports/weekly")
        assert page.locator("tr.run[data-status=succeeded]").count() == 1
        assert page.locator("#audience-chart").is_visible()
        assert page.locator("#runs-chart").is_visible()
        page.goto("/connections")
        assert page.locator("article.connection").count() == 2
        assert "Emulated Ad Account" not in page.content()
        page.goto("/audit")
        assert "export.create" in page.content()
        page.goto("/exports")
        assert "system refresh" in page.inner_text("table")
        # The REST API's docs, served from the package (no CDN) under the same CSP rules.
        page.goto("/api/docs")
        page.wait_for_selector(".swagger-ui .info")
        assert "audiencesync" in page.inner_text(".swagger-ui .info")
        victor.shot("30-api-docs")
        assert not victor.console_errors, victor.console_errors
    finally:
        victor.close()
