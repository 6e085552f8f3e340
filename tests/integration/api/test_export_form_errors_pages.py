"""The export form's and the import form's errors belong to a field, in the form's scale
(review of issue 14, M6): a country phones do not know, a consent field the dataset lacks,
a removal share over 100 %, a key column the file lacks. Each shows next to its input, the
top of the page names the field, and the API keeps its own scale (0 to 1)."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.api.conftest import Api, add_export_via_api, connect_via_api
from tests.integration.api.test_field_errors_pages import _error_next_to, _signed_in
from tests.integration.api.test_web_pages import csrf_of

SQLITE_ONLY = pytest.mark.parametrize("database_url", [None], ids=["sqlite"])


def _export_form(**changes: str) -> dict[str, str | list[str]]:
    form: dict[str, str | list[str]] = {
        "action": "save", "name": "weekly", "connection": "Snap",
        "audience_choice": "create", "audience_name": "weekly", "retention_days": "9999",
        "dataset": "customers", "email_field": "email", "segments": ["everyone"],
        "mode": "mirror", "max_removal_share": "20", "schedule": "manual", "timezone": "UTC",
    }  # fmt: skip
    form.update(changes)
    return form


def _save(browser: httpx.Client, **changes: str) -> str:
    form = {"csrf_token": csrf_of(browser, "/exports/new"), **_export_form(**changes)}
    answer = browser.post("/exports/new", data=form)
    assert answer.status_code == 400, (answer.status_code, answer.text[:300])
    return answer.text


def _summary(page: str) -> str:
    start = page.index('<p class="error-summary" id="error-summary">')
    return page[start : page.index("</p>", start)]


@SQLITE_ONLY
def test_export_form_errors_show_next_to_their_field_in_the_forms_scale(profiles: Api) -> None:
    api = profiles
    connect_via_api(api)
    with _signed_in(api, "admin") as browser:
        page = _save(browser, default_country="XX")
        said = _error_next_to(page, r'name="default_country"', "default_country")
        assert said.startswith("unknown default country 'XX'")
        assert "1 field needs attention: Default country for phones" in _summary(page)

        page = _save(browser, consent_field="nosuch")
        said = _error_next_to(page, r'name="consent_field"', "consent_field")
        assert said.startswith("the consent field 'nosuch' is not a column of dataset")
        assert "1 field needs attention: Consent field" in _summary(page)

        page = _save(browser, max_removal_share="150")
        said = _error_next_to(page, r'name="max_removal_share"', "max_removal_share")
        assert said.startswith("150% is not a share: give a percentage from 0 to 100")
        assert "from 0 to 1," not in page
    assert api.admin.get("/api/v1/exports").json() == []  # nothing was saved
    # The API's scale is 0 to 1, and it says so; it refuses the unknown country too.
    share = add_export_via_api(api, api.admin, max_removal_share=1.5)
    assert share.status_code == 422
    assert "less than or equal to 1" in share.text
    country = add_export_via_api(api, api.admin, default_country="XX")
    assert country.status_code == 400
    assert "unknown default country 'XX'" in country.json()["detail"]


@SQLITE_ONLY
def test_an_import_whose_key_column_is_missing_shows_the_error_at_the_key(api: Api) -> None:
    with _signed_in(api, "admin") as browser:
        answer = browser.post(
            "/profiles/import",
            data={"csrf_token": csrf_of(browser, "/profiles"), "key": "custmer_id"},
            files={"file": ("people.csv", b"customer_id,email\n1,a@example.com\n", "text/csv")},
        )
        assert answer.status_code == 400, answer.text[:300]
        said = _error_next_to(answer.text, r'name="key"', "key")
        assert said.startswith("people.csv has no column 'custmer_id' to use as the key")
        assert "1 field needs attention: Key column" in _summary(answer.text)
