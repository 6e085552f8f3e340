"""In a real browser: the export form helps where the user is (review of issue 14).

A refused save puts the field at fault in view and focus, and says at the top which field
it is; "Check the fields" works before the form is complete; changing a field or the
default country refreshes the sample; disabled buttons look disabled.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from audiencesync.control.users import resolve_actor
from audiencesync.profiles import store
from tests.e2e.browser.conftest import Stack, User
from tests.e2e.browser.test_seed_flow import add_connection

pytestmark = [pytest.mark.browser, pytest.mark.slow]
# British numbers written the national way: rejected without a default country, all
# usable with GB.
PHONES_CSV = (
    "id,email,phone\n"
    "1,a@example.com,07911 123456\n"
    "2,b@example.com,020 7946 0123\n"
    "3,c@example.com,07700 900123\n"
    "4,d@example.com,+1 415 555 0100\n"
)


def phone_share(page: Any) -> str:
    """The phone row's rejected share as shown ("75.0%")."""
    cell = page.inner_text("#field-preview tr[data-kind=phone] td:nth-child(5)")
    found = re.match(r"\s*([\d.]+%)", cell)
    assert found is not None, cell
    return found.group(1)


@pytest.fixture(scope="module")
def admin(browser: Any, stack: Stack) -> Any:
    user = User(browser, stack, "admin")
    try:
        user.sign_in()
        add_connection(user, "Helpful", shared=False, step="help-01")
        ctx = stack.open_context()
        try:
            source = stack.home.parent / "phones.csv"
            source.write_text(PHONES_CSV)
            store.import_file(ctx, resolve_actor(ctx, "admin"), source, key="id", name="phones")
        finally:
            ctx.close()
        yield user
    finally:
        user.close()


def test_a_refused_save_brings_the_field_at_fault_into_view_and_focus(admin: User) -> None:
    page = admin.page
    page.goto("/exports/new?dataset=phones")
    page.fill("#export-name", "helped")
    page.fill("#max-removal-share", "150")
    page.click("#save-export")
    page.wait_for_selector(".field-error[data-field=max_removal_share]")
    error = page.inner_text(".field-error[data-field=max_removal_share]")
    assert "150% is not a share: give a percentage from 0 to 100" in error
    assert page.inner_text("#error-summary") == (
        "1 field needs attention: Hold removals for approval above"
    )
    assert page.evaluate("document.activeElement.id") == "max-removal-share"
    assert page.evaluate("window.scrollY") > 0
    box = page.locator(".field-error[data-field=max_removal_share]").bounding_box()
    viewport = page.viewport_size
    assert box is not None
    assert viewport is not None
    assert box["y"] >= 0
    assert box["y"] + box["height"] <= viewport["height"]
    admin.shot("help-02-refused-save")  # last: a full-page picture moves the page


def test_check_the_fields_needs_no_name_and_the_country_refreshes_the_sample(
    admin: User,
) -> None:
    page = admin.page
    page.goto("/exports/new?dataset=phones")
    assert page.input_value("#export-name") == ""
    assert page.input_value("#phone_field") == "phone"  # suggested from the column
    without = phone_share(page)
    page.fill("#default_country", "GB")
    page.click("#check-fields")  # the empty, required name does not stop it
    page.wait_for_load_state()
    admin.shot("help-03-checked-with-gb")
    with_gb = phone_share(page)
    expected = page.request.get(
        "/exports/matching?dataset=phones&email_field=email&phone_field=phone&default_country=GB"
    ).text()
    assert re.search(rf">\s*{re.escape(with_gb)}", expected), expected
    assert with_gb != without
    assert (without, with_gb) == ("75.0%", "0.0%")
    # Without the button: changing the country alone refreshes the share in place.
    page.evaluate("window.notReloaded = true")
    page.fill("#default_country", "")
    page.locator("#default_country").dispatch_event("change")
    expect(page.locator("#field-preview tr[data-kind=phone] td:nth-child(5)")).to_contain_text(
        "75.0%"
    )
    # (The field selects do not swap the section in as they change: two quick choices
    # raced, and the first one's answer put back a field the user had just unmapped.)
    assert page.evaluate("window.notReloaded === true")  # no page load: swapped in
    assert page.evaluate("document.querySelectorAll('#export-form').length") == 1


def test_the_search_button_needs_no_name(admin: User) -> None:
    page = admin.page
    page.goto("/exports/new?dataset=phones")
    page.click("#show-audiences")
    page.wait_for_load_state()
    assert page.url.endswith("/exports/new")  # posted, not held by the browser
    assert page.input_value("#export-name") == ""


def test_a_disabled_button_looks_disabled(admin: User) -> None:
    page = admin.page
    page.goto("/exports")
    style = page.evaluate(
        """() => {
            const button = document.createElement("button");
            button.disabled = true;
            button.textContent = "Run now";
            document.querySelector("main").appendChild(button);
            const seen = getComputedStyle(button);
            return {opacity: seen.opacity, cursor: seen.cursor};
        }"""
    )
    assert float(style["opacity"]) < 0.6
    assert style["cursor"] == "not-allowed"
