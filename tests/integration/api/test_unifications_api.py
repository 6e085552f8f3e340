"""``/api/v1/unifications`` and the unification pages over real HTTP."""

from __future__ import annotations

from pathlib import Path

from audiencesync.control.models import Role
from audiencesync.profiles import store
from tests.integration.api.conftest import Api
from tests.integration.api.test_auth import sign_in
from tests.integration.api.test_web_pages import csrf_of

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "unify"
SOURCES = ["crm:customer_id", "shop:order_customer", "loyalty:card"]


def _load(api: Api) -> None:
    admin = api.actors[Role.ADMIN]
    for name, key in (("crm", "customer_id"), ("shop", "order_customer"), ("loyalty", "card")):
        store.import_file(api.ctx, admin, EXAMPLE / f"{name}.csv", key=key, name=name)


def test_define_read_explain_and_remove_through_the_api(api: Api) -> None:
    _load(api)
    rules = (EXAMPLE / "rules.yaml").read_text()
    refused = api.viewer.post(
        "/api/v1/unifications", json={"name": "people", "sources": SOURCES, "rules_text": rules}
    )
    assert refused.status_code == 403
    bad = api.contributor.post(
        "/api/v1/unifications",
        json={"name": "people", "sources": SOURCES, "rules": {"fields": {"email": "email"}}},
    )
    assert bad.status_code == 400
    assert "match" in bad.json()["detail"]
    created = api.contributor.post(
        "/api/v1/unifications", json={"name": "people", "sources": SOURCES, "rules_text": rules}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["sources"] == SOURCES
    assert body["stats"]["source_records_total"] == 13
    assert body["stats"]["unified_profiles"] == 6

    listed = api.viewer.get("/api/v1/unifications").json()
    assert [u["name"] for u in listed] == ["people"]
    dataset = api.viewer.get("/api/v1/datasets/people").json()
    assert dataset["kind"] == "unified"
    assert dataset["row_count"] == 6
    sample = api.viewer.get("/api/v1/datasets/people/sample").json()
    ann = next(r for r in sample["rows"] if r["last_name"] == "Lee")
    assert ann["record_count"] == 3
    assert sorted(ann["email"]) == ["Ann.Lee@Example.com", "ann@mail.example.net"]

    explained = api.viewer.get(f"/api/v1/unifications/people/profiles/{ann['unified_id']}")
    assert explained.status_code == 200
    assert {r["key"]: r["joined_by"] for r in explained.json()["records"]} == {
        "1": "email", "s-10": "email", "s-11": "phone",
    }  # fmt: skip
    assert api.viewer.get("/api/v1/unifications/people/profiles/999").status_code == 404
    again = api.contributor.post("/api/v1/unifications/people/refresh")
    assert again.status_code == 200
    assert again.json()["version"] == 2
    assert api.contributor.delete("/api/v1/datasets/crm").status_code == 409
    assert api.contributor.delete("/api/v1/unifications/people").status_code == 204
    assert api.viewer.get("/api/v1/unifications").json() == []
    assert api.viewer.get("/api/v1/datasets/people").status_code == 404


def test_the_pages_define_show_and_explain(api: Api) -> None:
    _load(api)
    browser, _ = sign_in(api, "carol")
    try:
        token = csrf_of(browser, "/unifications")
        answer = browser.post(
            "/unifications",
            data={"csrf_token": token, "name": "people", "sources": "\n".join(SOURCES),
                  "rules": (EXAMPLE / "rules.yaml").read_text()},
        )  # fmt: skip
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == "/unifications/people"
        page = browser.get("/unifications/people")
        assert page.status_code == 200
        assert 'id="unified-profiles">6<' in page.text
        assert 'id="source-records">13 (crm 4, shop 4, loyalty 5)' in page.text
        assert "noreply" not in page.text.lower()
        profile = browser.get("/unifications/people/profiles/1")
        assert profile.status_code == 200
        assert "s-10" in profile.text
        wrong = browser.post(
            "/unifications",
            data={"csrf_token": token, "name": "x", "sources": "crm", "rules": "a: 1"},
        )
        assert wrong.status_code == 400
        assert "is not DATASET:KEY" in wrong.text
        listing = browser.get("/profiles")
        assert "unified" in listing.text
    finally:
        browser.close()
