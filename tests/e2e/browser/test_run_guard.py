"""In a real browser: a mirror run held for approval, approved from its run page."""

from __future__ import annotations

import time
from typing import Any

import pytest

from audiencesync.control.users import resolve_actor
from audiencesync.profiles import store
from audiencesync.segments import service as segments
from audiencesync.segments.rules import parse_rules
from audiencesync.sync import exports, runs
from audiencesync.sync.exports import ExportSpec
from tests.e2e.browser.conftest import Stack, User
from tests.e2e.browser.test_seed_flow import add_connection

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_an_admin_approves_held_removals_from_the_run_page(browser: Any, stack: Stack) -> None:
    admin = User(browser, stack, "admin")
    try:
        admin.sign_in()
        add_connection(admin, "Guarded", shared=False, step="guard-01")
        ctx = stack.open_context()
        try:
            who = resolve_actor(ctx, "admin")
            source = stack.home.parent / "guarded.csv"
            source.write_text("id,email,country\n1,a@example.com,GB\n2,b@example.com,GB\n")
            store.import_file(ctx, who, source, key="id", name="guarded")
            segments.create_segment(
                ctx, who, "guarded-gb", dataset="guarded",
                rules=parse_rules({"field": "country", "op": "=", "value": "GB"}),
            )  # fmt: skip
            audience = str(stack.emulator.create_segment_directly("Guarded")["id"])
            exports.add_export(
                ctx, who,
                ExportSpec(name="guarded", connection="Guarded", segments=("guarded-gb",),
                           email_field="email", audience_id=audience),
            )  # fmt: skip
            assert runs.run_now(ctx, who, "guarded").status == "succeeded"
            source.write_text("id,email,country\n1,a@example.com,FR\n2,b@example.com,FR\n")
            store.refresh(ctx, who, "guarded")
            held = runs.run_now(ctx, who, "guarded")
            assert held.status == "needs_approval"
        finally:
            ctx.close()
        assert len(stack.emulator.members(audience, "EMAIL_SHA256")) == 2
        page = admin.page
        page.goto(f"/runs/{held.id}")
        assert "needs approval" in page.inner_text("h1")
        assert "segments now match nobody" in page.inner_text("#guard")
        admin.shot("guard-02-held-run")
        page.click("#guard button:has-text('Approve removals')")
        page.wait_for_selector("text=sends the removals it held")
        deadline = time.monotonic() + 60
        while "succeeded" not in page.inner_text("h1"):
            assert time.monotonic() < deadline, page.inner_text("main")
            time.sleep(0.5)
            page.reload()
        assert stack.emulator.members(audience, "EMAIL_SHA256") == set()
        page.goto(f"/runs/{held.id}")
        assert "approved" in page.inner_text("h1")
        admin.shot("guard-03-approved")
        assert not admin.console_errors, admin.console_errors
    finally:
        admin.close()
