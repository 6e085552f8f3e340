"""Admin › Alerts and the export form's Alerts box in a real browser.

``audiencesync serve`` runs in its own process; the test alert leaves it through apprise
for a webhook receiver in this process, over loopback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from audiencesync.control import users
from audiencesync.sync import exports
from audiencesync.sync.exports import ExportSpec
from tests.alert_receivers import Webhook, webhook_receiver
from tests.e2e.browser.conftest import Stack, User
from tests.e2e.browser.test_seed_flow import add_connection
from tests.snap_helpers import load_profiles

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def hook() -> Iterator[Webhook]:
    with webhook_receiver() as receiver:
        yield receiver


def test_admin_adds_a_channel_tests_it_and_an_export_chooses_it(
    browser: Any, stack: Stack, hook: Webhook, tmp_path: Path
) -> None:
    admin = User(browser, stack, "admin")
    try:
        admin.sign_in()
        page = admin.page
        add_connection(admin, "Snap alerts", shared=False, step="alerts-01-connection")
        ctx = stack.open_context()
        try:
            actor = users.resolve_actor(ctx, "admin")
            load_profiles(ctx, actor, tmp_path)
            audience = str(stack.emulator.create_segment_directly("Alerted")["id"])
            exports.add_export(
                ctx, actor,
                ExportSpec(name="alerted", connection="Snap alerts", segments=("everyone",),
                           email_field="email", audience_id=audience, schedule="manual"),
            )  # fmt: skip
        finally:
            ctx.close()

        page.click("nav >> text=Admin › Alerts")
        assert "No channel yet" in page.content()
        page.fill("form[action='/alerts'] input[name=name]", "ops hook")
        page.fill("form[action='/alerts'] input[name=url]", hook.url("/secret-path-9f3"))
        page.click("form[action='/alerts'] button[type=submit]")
        page.wait_for_selector("text=Alert channel ops hook")
        row = page.locator("#channels tbody tr", has_text="ops hook")
        assert f"json://127.0.0.1:{hook.port}" in row.inner_text()
        assert "secret-path-9f3" not in page.content()
        row.locator("button", has_text="Send a test").click()
        page.wait_for_selector("text=A test alert was delivered to ops hook.")
        delivered = page.locator("#deliveries tbody tr").first
        assert "test" in delivered.inner_text()
        assert "delivered" in delivered.inner_text()
        assert [m["title"] for m in hook.messages("/secret-path-9f3")] == [
            "audiencesync: test alert"
        ]
        admin.shot("alerts-02-channel-tested")

        page.goto("/exports/alerted/edit")
        page.check("#alerts input[name=alert_channels][value='ops hook']")
        for event in ("run_partially_succeeded", "reject_share", "audience_drift"):
            page.uncheck(f"#alerts input[name=alert_events][value={event}]")
        page.fill("#alert-reject-share", "15")
        # (No full-page screenshot here: taken right before the click, it left the click
        # without effect in this headless Chromium.)
        page.click("#save-export")
        page.wait_for_selector("text=Export alerted was saved")
        admin.shot("alerts-03-export-saved")
        assert page.inner_text("#export-alerts") == (
            "run_failed, needs_approval, needs_reauth, recovered → ops hook"
        )
        page.goto("/exports/alerted/edit")
        assert page.input_value("#alert-reject-share") == "15"
        assert page.is_checked("#alerts input[name=alert_channels][value='ops hook']")
        assert not page.is_checked("#alerts input[name=alert_events][value=reject_share]")
        page.goto("/alerts")
        assert "alerted" in page.locator("#channels tbody tr", has_text="ops hook").inner_text()
        assert not admin.console_errors, admin.console_errors
    finally:
        admin.close()
