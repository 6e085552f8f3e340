"""What schemathesis found (tests/security/test_schemathesis.py), each as its own
regression test: every one of these answered 500 before its fix."""

from __future__ import annotations

from tests.integration.api.conftest import Api, add_export_via_api, connect_via_api


def _integer_path_operations(api: Api) -> list[tuple[str, str, str, int, int]]:
    """Every operation of the OpenAPI document with an integer in its path: (method, path,
    parameter, minimum, maximum). Read from the document so a new route cannot be missed
    (schemathesis found erasures and unified profiles after runs and tokens were fixed)."""
    document = api.admin.get("/api/openapi.json").json()
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                if parameter["in"] == "path" and schema.get("type") == "integer":
                    assert "maximum" in schema, (method, path)
                    assert "minimum" in schema, (method, path)
                    found.append(
                        (method.upper(), path, parameter["name"],
                         schema["minimum"], schema["maximum"])
                    )  # fmt: skip
    return found


def test_ids_beyond_the_id_columns_in_a_path_are_refused_in_words(api: Api) -> None:
    operations = _integer_path_operations(api)
    paths = {path for _, path, *_ in operations}
    # The ones schemathesis found answering 500 are among them.
    assert {"/api/v1/runs/{run_id}", "/api/v1/privacy/erasures/{erasure_id}/resume",
            "/api/v1/unifications/{name}/profiles/{unified_id}"} <= paths  # fmt: skip
    for method, path, name, low, high in operations:
        assert high <= 2**63 - 1, (path, high)
        if "{name}" in path:
            path = path.replace("{name}", "nosuch")
        for number in (high + 1, 2**64, 10**40, low - 1):
            answer = api.admin.request(method, path.replace("{" + name + "}", str(number)))
            assert answer.status_code == 422, (path, number, answer.text)
            assert "less than or equal" in answer.text or "greater than" in answer.text
        # The largest id is an ordinary id that does not exist.
        answer = api.admin.request(method, path.replace("{" + name + "}", str(high)))
        assert answer.status_code == 404, (path, answer.text)


def test_a_run_page_with_an_id_beyond_the_id_column_is_not_a_500(api: Api) -> None:
    from tests.integration.api.test_auth import sign_in

    browser, answer = sign_in(api, "admin")
    try:
        assert answer.status_code == 303, answer.text
        page = browser.get(f"/runs/{2**63}")
    finally:
        browser.close()
    assert page.status_code == 422, page.text


NULLS = ["timezone", "schedule", "retention_days", "connection", "name", "segments", "mode"]


def test_a_patch_setting_a_required_export_field_to_null_is_one_sentence(profiles: Api) -> None:
    api = profiles
    connect_via_api(api)
    assert add_export_via_api(api, api.admin).status_code == 201
    for field in NULLS:
        answer = api.admin.patch("/api/v1/exports/weekly", json={field: None})
        assert answer.status_code == 400, answer.text
        assert f"'{field}' cannot be null" in answer.json()["detail"]
        # A viewer may not change it at all, whatever the body says.
        denied = api.viewer.patch("/api/v1/exports/weekly", json={field: None})
        assert denied.status_code == 403, denied.text
    kept = api.admin.get("/api/v1/exports/weekly").json()
    assert kept["name"] == "weekly"
    assert kept["timezone"] == "UTC"


def test_a_nul_in_a_path_query_or_json_body_is_one_sentence(api: Api) -> None:
    """PostgreSQL refuses NUL in any text: these answered 500 there."""
    answers = [
        api.viewer.get("/api/v1/runs", params={"export": "a\x00b"}),
        api.viewer.get("/api/v1/exports/a%00b"),
        api.admin.post("/api/v1/sources", json={"name": "a\x00", "url": "sqlite:///x.db"}),
        api.contributor.post(
            "/api/v1/segments",
            json={"name": "n\x00", "dataset": "customers", "rules": {"segment": "gb"}},
        ),
    ]
    for answer in answers:
        assert answer.status_code == 400, answer.text
        assert "NUL character" in answer.json()["detail"]
    with api.client() as anonymous:
        page = anonymous.get("/exports/a%00b")
    assert page.status_code == 400
    # An escaped backslash before u0000 is text, not a NUL: it reaches the route.
    text = api.viewer.post(
        "/api/v1/segments/validate", json={"dataset": "customers", "rules_text": "\\u0000"}
    )
    assert "NUL character (" not in text.text
