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


# --- issue 13, second review: lone surrogates and audience ids -------------------------

SURROGATE_BODIES = {
    # JSON text as sent: the escapes decode to a lone surrogate.
    "rule value": ("/api/v1/segments/validate", "viewer",
                   '{"dataset":"customers","rules":{"field":"country","op":"=","value":"\\ud800"}}'),
    "rule field": ("/api/v1/segments/validate", "viewer",
                   '{"dataset":"customers","rules":{"field":"\\ud800","op":"=","value":1}}'),
    "segment description": ("/api/v1/segments", "contributor",
                            '{"name":"d1","dataset":"customers","description":"\\udc00",'
                            '"rules":{"segment":"gb"}}'),
    "low before high": ("/api/v1/segments", "contributor",
                        '{"name":"d2","dataset":"customers","description":"\\udc00\\ud800",'
                        '"rules":{"segment":"gb"}}'),
    "token name": ("/api/v1/me/tokens", "viewer", '{"name":"x\\ud800"}'),
    "a key": ("/api/v1/me/tokens", "viewer", '{"name":"x","\\udfff":1}'),
}  # fmt: skip


def test_a_lone_surrogate_anywhere_in_a_request_is_one_sentence(profiles: Api) -> None:
    """Main took these: the segment was committed with a 500, then the segment list, its
    count and the audit log answered 500 for everyone."""
    api = profiles
    for case, (path, role, body) in SURROGATE_BODIES.items():
        client = getattr(api, role)
        answer = client.post(path, content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 400, (case, answer.text)
        assert "lone UTF-16 surrogate" in answer.json()["detail"], (case, answer.text)
    # In a query string (percent-encoded UTF-8 of a surrogate) and a form body.
    query = api.viewer.get("/api/v1/audit?target=%ED%A0%80")
    assert query.status_code == 400, query.text
    assert "lone UTF-16 surrogate" in query.json()["detail"]
    with api.client() as anonymous:
        form = anonymous.post(
            "/login", content=b"name=%ed%a0%80&password=x",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )  # fmt: skip
    assert form.status_code == 400, form.text
    # A YAML escape in rule text decodes to one too: validation refuses it.
    text = api.viewer.post(
        "/api/v1/segments/validate",
        json={"dataset": "customers", "rules_text": 'field: email\nop: "="\nvalue: "\\ud800"\n'},
    )
    assert text.status_code == 400, text.text
    assert "lone UTF-16 surrogate" in text.json()["detail"]
    # A pair is one character, and an escaped backslash makes "\ud800" six characters.
    for name, description in (("pair", "\\ud83d\\ude00"), ("text", "\\\\ud800")):
        rules = '"rules":{"segment":"gb"}'
        body = f'{{"name":"{name}","dataset":"customers","description":"{description}",{rules}}}'
        kept = api.contributor.post(
            "/api/v1/segments", content=body, headers={"content-type": "application/json"}
        )
        assert kept.status_code == 201, kept.text
    described = {s["name"]: s["description"] for s in api.viewer.get("/api/v1/segments").json()}
    assert described["pair"] == "\U0001f600"
    assert described["text"] == "\\ud800"
    assert "d1" not in described
    assert api.viewer.get("/api/v1/segments/gb/count").status_code == 200
    assert api.admin.get("/api/v1/audit").status_code == 200


def test_an_audit_entry_stored_with_a_lone_surrogate_is_shown_not_a_500(api: Api) -> None:
    from audiencesync.control.models import AuditEntry
    from tests.integration.api.test_auth import sign_in

    # As main stored them before the entry refused surrogates: text columns could not hold
    # one, but the JSON of the change could (as the escape "\ud800").
    with api.ctx.db.session() as session:
        session.add(
            AuditEntry(actor="admin", action="segment.create", target="segment:d1",
                       before=None, after={"description": "x\ud800", "name": "d1"})
        )  # fmt: skip
    listed = api.admin.get("/api/v1/audit")
    assert listed.status_code == 200, listed.text
    entry = next(e for e in listed.json() if e["action"] == "segment.create")
    assert entry["after"]["description"] == "x\ufffd"
    browser, signed = sign_in(api, "admin")
    try:
        assert signed.status_code == 303, signed.text
        page = browser.get("/audit")
    finally:
        browser.close()
    assert page.status_code == 200, page.text
    assert "x\ufffd" in page.text


def test_an_audience_id_of_unicode_digits_or_5000_digits_is_one_short_sentence(
    profiles: Api,
) -> None:
    api = profiles
    connect_via_api(api)
    for audience_id in ("\u00b2\u00b3", "\u0661\u0662", "9" * 5000):
        answer = add_export_via_api(
            api, api.admin, name="odd", create_audience=False, audience_id=audience_id
        )
        # Main: 502 "this is a bug in audiencesync" for "²³", the whole id echoed for 5,000.
        assert answer.status_code == 400, answer.text
        body = answer.json()
        assert body["field"] == "audience_id", body
        assert "is not a Snapchat audience id" in body["detail"]
        assert len(body["detail"]) < 300, len(body["detail"])
    assert api.admin.get("/api/v1/exports/odd").status_code == 404
