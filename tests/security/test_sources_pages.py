"""Admin › Sources in the web UI: administrators add a source (the URL never comes back
in a page), contributors link a table through it from the Profiles page."""

from __future__ import annotations

from pathlib import Path

from tests.integration.api.conftest import Api
from tests.integration.api.test_auth import sign_in
from tests.integration.api.test_web_pages import csrf_of


def test_administrators_add_sources_and_contributors_link_through_them(
    api: Api, crm_db: Path
) -> None:
    url = f"duckdb:///{crm_db}?access_mode=read_write"
    admin, _ = sign_in(api, "admin")
    carol, _ = sign_in(api, "carol")
    try:
        added = admin.post(
            "/sources",
            data={"name": "crm", "url": url, "csrf_token": csrf_of(admin, "/sources")},
        )
        assert added.status_code == 303, added.text
        page = admin.get("/sources").text
        assert "crm" in page
        assert str(crm_db) in page  # the location is shown ...
        assert "duckdb:///" not in page  # ... never the URL
        refused = carol.post(
            "/sources",
            data={"name": "x", "url": url, "csrf_token": csrf_of(carol, "/sources")},
        )
        assert refused.status_code == 403
        assert "duckdb:///" not in refused.text
        profiles = carol.get("/profiles").text
        assert 'action="/profiles/link"' in profiles
        linked = carol.post(
            "/profiles/link",
            data={"source": "crm", "table": "people", "link_key": "id", "link_name": "crm",
                  "csrf_token": csrf_of(carol, "/profiles")},
        )  # fmt: skip
        assert linked.status_code == 303, linked.text
        assert api.viewer.get("/api/v1/datasets/crm").json()["row_count"] == 2
        catalog = carol.post(
            "/profiles/link",
            data={"source": "crm", "table": "duckdb_tables", "link_key": "x",
                  "link_name": "cat", "csrf_token": csrf_of(carol, "/profiles")},
        )  # fmt: skip
        assert catalog.status_code == 403
        assert "system catalog" in catalog.text
    finally:
        admin.close()
        carol.close()
