"""Field errors show next to the field (issue 14): on the users, alerts, sources, account,
schedule, unifications and privacy forms, a service error about one input is shown right
after that input (``data-field``), not in the page's top error box, and what was typed is
still in the form."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.integration.api.conftest import Api
from tests.integration.api.test_auth import sign_in
from tests.integration.api.test_web_pages import csrf_of

#: the page's one form-level error box (``error_box``), which field errors must not use.
TOP_BOX = '<p class="error" role="alert" id="form-error">'
#: a form control a person fills (hidden inputs and buttons are not).
CONTROL = re.compile(r'<(?:input(?![^>]*type="hidden")|select|textarea)\b[^>]*>')


@contextmanager
def _signed_in(api: Api, name: str) -> Iterator[httpx.Client]:
    browser, _ = sign_in(api, name)
    try:
        yield browser
    finally:
        browser.close()


def _post(browser: httpx.Client, page: str, action: str, **data: str | list[str]) -> str:
    answer = browser.post(action, data={"csrf_token": csrf_of(browser, page), **data})
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:300])
    return answer.text


def _error_next_to(page: str, control: str, field: str) -> str:
    """The text of the one field error ``field``: it must follow the control matching
    ``control`` with no other control in between, and the top box must be empty."""
    assert TOP_BOX not in page, "the error was shown at the top of the page"
    assert page.count('id="form-error"') == 1, "the error was shown more than once"
    error = re.search(rf'<p class="error field-error"[^>]*data-field="{field}">([^<]*)</p>', page)
    assert error is not None, f"no error next to field {field}"
    controls = list(CONTROL.finditer(page, 0, error.start()))
    assert controls, "no form control before the error"
    assert re.search(control, controls[-1].group(0)), (
        f"the error of {field} follows {controls[-1].group(0)}, not {control}"
    )
    return html.unescape(error.group(1))


def _value_of(page: str, name: str) -> str:
    """The value a text input named ``name`` shows."""
    found = re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', page)
    assert found is not None, f"no value in input {name}"
    return html.unescape(found.group(1))


def test_add_user_shows_the_name_and_password_errors_next_to_them(api: Api) -> None:
    with _signed_in(api, "admin") as browser:
        page = _post(browser, "/users", "/users", name="bad name!", role="viewer",
                     password="a-long-password")  # fmt: skip
        said = _error_next_to(page, r'name="name"', "name")
        assert said.startswith("'bad name!' is not a valid user name")
        assert _value_of(page, "name") == "bad name!"
        assert '<option value="viewer" selected>' in page  # the role chosen is kept

        page = _post(browser, "/users", "/users", name="dora", role="viewer", password="short")
        assert _error_next_to(page, r'name="password"', "password").startswith(
            "the password is too short"
        )
        assert _value_of(page, "name") == "dora"

        page = _post(browser, "/users", "/users", name="carol", role="viewer",
                     password="a-long-password")  # fmt: skip
        assert "already exists" in _error_next_to(page, r'name="name"', "name")


def test_a_row_s_role_and_password_errors_show_in_that_row(api: Api) -> None:
    with _signed_in(api, "admin") as browser:
        page = _post(browser, "/users", "/users/carol/password", password="short")
        said = _error_next_to(page, r'aria-label="new password for carol"', "password")
        assert said.startswith("the password is too short")

        page = _post(browser, "/users", "/users/admin/role", role="viewer")
        said = _error_next_to(page, r'id="role-admin"', "role")
        assert said.startswith("admin is the last administrator")


def test_alert_channel_errors_show_next_to_the_name_and_the_url(api: Api) -> None:
    with _signed_in(api, "admin") as browser:
        page = _post(browser, "/alerts", "/alerts", name="ops!", url="json://localhost/x")
        assert _error_next_to(page, r'name="name"', "name").startswith("'ops!' is not a valid")
        assert _value_of(page, "name") == "ops!"

        page = _post(browser, "/alerts", "/alerts", name="ops", url="no scheme here")
        assert _error_next_to(page, r'name="url"', "url").startswith("a channel URL must be")
        assert _value_of(page, "name") == "ops"


def test_source_errors_show_next_to_the_name_and_the_url(api: Api) -> None:
    with _signed_in(api, "admin") as browser:
        page = _post(browser, "/sources", "/sources", name="Bad Name", url="sqlite:////x.db")
        said = _error_next_to(page, r'name="name"', "name")
        assert said.startswith("'Bad Name' is not a valid source name")
        assert _value_of(page, "name") == "Bad Name"

        page = _post(browser, "/sources", "/sources", name="crm", url="mysql://h/db")
        assert _error_next_to(page, r'name="url"', "url").startswith("sources may be PostgreSQL")
        assert _value_of(page, "name") == "crm"


def test_account_token_and_password_errors_show_next_to_their_fields(api: Api) -> None:
    with _signed_in(api, "victor") as browser:
        page = _post(browser, "/account", "/account/tokens", name="nightly",
                     expires_in_days="30 days")  # fmt: skip
        said = _error_next_to(page, r'name="expires_in_days"', "expires_in_days")
        assert said.startswith("'30 days' is not a number of days")
        assert _value_of(page, "name") == "nightly"
        assert _value_of(page, "expires_in_days") == "30 days"

        page = _post(browser, "/account", "/account/tokens", name=" ", expires_in_days="7")
        assert _error_next_to(page, r'name="name"', "name").startswith("give the token a name")
        assert _value_of(page, "expires_in_days") == "7"

        page = _post(browser, "/account", "/account/password", current_password="",
                     password="a-new-password", confirm="another-password")  # fmt: skip
        said = _error_next_to(page, r'name="confirm"', "confirm")
        assert said == "the two passwords differ: type them again."

        page = _post(browser, "/account", "/account/password", current_password="wrong-one",
                     password="a-new-password", confirm="a-new-password")  # fmt: skip
        said = _error_next_to(page, r'name="current_password"', "current_password")
        assert said.startswith("your current password is not that")


def test_schedule_errors_show_next_to_the_cron_and_the_zone(api: Api) -> None:
    with _signed_in(api, "admin") as browser:
        page = _post(browser, "/settings/schedule", "/settings/schedule", enabled="on",
                     cron="every night", timezone="Europe/Paris")  # fmt: skip
        said = _error_next_to(page, r'name="cron"', "cron")
        assert said.startswith("'every night' is not a cron expression")
        assert _value_of(page, "cron") == "every night"
        assert _value_of(page, "timezone") == "Europe/Paris"

        page = _post(browser, "/settings/schedule", "/settings/schedule", enabled="on",
                     cron="0 4 * * *", timezone="Mars/Base")  # fmt: skip
        said = _error_next_to(page, r'name="timezone"', "timezone")
        assert said.startswith("unknown time zone 'Mars/Base'")
        assert _value_of(page, "cron") == "0 4 * * *"


def test_unification_errors_show_next_to_the_sources_and_the_rules(api: Api) -> None:
    rules = "fields: [not, a, map"
    with _signed_in(api, "carol") as browser:
        page = _post(browser, "/unifications", "/unifications", name="people",
                     sources="crm customer_id", rules=rules)  # fmt: skip
        said = _error_next_to(page, r'name="sources"', "sources")
        assert said.startswith("'crm customer_id' is not DATASET:KEY")
        assert _value_of(page, "name") == "people"
        assert ">crm customer_id</textarea>" in page
        assert f">{rules}</textarea>" in page

        page = _post(browser, "/unifications", "/unifications", name="people",
                     sources="crm:customer_id", rules=rules)  # fmt: skip
        assert _error_next_to(page, r'name="rules"', "rules")
        assert ">crm:customer_id</textarea>" in page


def test_privacy_list_and_erasure_errors_show_next_to_their_fields(api: Api) -> None:
    with _signed_in(api, "admin") as browser:
        page = _post(browser, "/privacy", "/privacy/lists", name="opt-outs", type="phone",
                     applies="all", column="phone", default_country="GB")  # fmt: skip
        said = _error_next_to(page, r'name="dataset"', "list_source")
        assert said.startswith("choose a file to upload, or name a dataset")
        assert _value_of(page, "name") == "opt-outs"
        assert _value_of(page, "column") == "phone"
        assert '<option value="phone" selected>' in page
        # The list form's country, not the erasure form's.
        assert re.search(r'name="default_country" size="3" value="GB"', page)

        page = _post(browser, "/privacy", "/privacy/lists", name="bad/name", type="email",
                     applies="all", dataset="customers", column="email")  # fmt: skip
        said = _error_next_to(page, r'name="name"', "name")
        assert said.startswith("'bad/name' is not a valid suppression list name")

        page = _post(browser, "/privacy", "/privacy/erase", emails="", phones="12",
                     maids="", default_country="")  # fmt: skip
        said = _error_next_to(page, r'name="phones"', "phones")
        assert said.startswith("the first phone given is not a usable phone")
        assert "give the default country of phones" in said

        page = _post(browser, "/privacy", "/privacy/erase", emails="", phones="",
                     maids="", default_country="FR")  # fmt: skip
        said = _error_next_to(page, r'name="maids"', "person")
        assert said.startswith("name the person to erase")
        assert re.search(r'placeholder="US" value="FR"', page)  # the country is kept
