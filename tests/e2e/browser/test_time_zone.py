"""A user with no time zone finds their browser's preselected on their account page;
once saved, every page says times in it (issue 14), in a real browser."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest

from audiencesync.control import users
from audiencesync.control.models import Role
from tests.conftest import PASSWORD
from tests.e2e.browser.conftest import Stack, User

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_browsers_zone_is_offered_then_pages_speak_it(browser: Any, stack: Stack) -> None:
    ctx = stack.open_context()
    try:
        users.add_user(ctx, users.resolve_actor(ctx, "admin"), "tokyo", Role.VIEWER, PASSWORD)
        created = {
            u.name: u.created_at for u in users.list_users(ctx, users.resolve_actor(ctx, "tokyo"))
        }
    finally:
        ctx.close()
    person = User(browser, stack, "tokyo")
    person.context.close()
    # The same person, in a browser that says it is in Tokyo.
    person.context = browser.new_context(
        base_url=stack.url, viewport={"width": 1280, "height": 900}, timezone_id="Asia/Tokyo"
    )
    person.context.set_default_timeout(15_000)
    person.page = person.context.new_page()
    person.page.on("console", person._console)
    try:
        person.sign_in()
        page = person.page
        page.goto("/account")
        assert page.inner_text("#time-zone-now") == "UTC"
        assert page.input_value("#time_zone") == "Asia/Tokyo"  # the browser's, not saved yet
        assert page.is_visible("#browser-zone")
        person.shot("time-zone-01-browser-zone-offered")
        page.click("form[action='/account/time-zone'] button[type=submit]")
        page.wait_for_selector("text=Times are now shown in Asia/Tokyo.")
        assert page.inner_text("#time-zone-now") == "Asia/Tokyo"
        page.goto("/users")
        local = created["admin"].astimezone(ZoneInfo("Asia/Tokyo"))
        row = page.locator("tbody tr", has_text="admin").first.inner_text()
        assert f"{local:%Y-%m-%d %H:%M} JST" in row
        person.shot("time-zone-02-users-in-tokyo-time")
        assert person.console_errors == []
    finally:
        person.close()
