"""The authorization matrix: every API operation in the OpenAPI document, asked by an
anonymous caller, a viewer, a contributor and an administrator, answers as the permission
table (control/permissions.py) says: 401 when anonymous, 403 for a role the table does
not allow, and neither for a role it allows.

Each operation is mapped to the table's action here; an operation missing from the map
fails the test, so a new route cannot go unchecked. Paths name things that exist (dataset
``customers``, segment ``gb``, export ``weekly`` on a connection shared with
contributors, user ``victor``), so a role check that came after the lookup would show;
removals run last, the administrator after the others.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from audiencesync.control.models import Role
from audiencesync.control.permissions import _ALLOWED, Action
from tests.integration.api.conftest import Api, add_export_via_api, connect_via_api

PUBLIC = "public"  # no sign-in needed
SIGNED_IN = "signed in"  # any role, about the caller themselves

#: (method, path) -> the action of the permission table the operation needs.
OPERATIONS: dict[tuple[str, str], Action | str] = {
    ("get", "/api/v1/me"): SIGNED_IN,
    ("patch", "/api/v1/me"): SIGNED_IN,
    ("get", "/api/v1/me/tokens"): SIGNED_IN,
    ("post", "/api/v1/me/tokens"): SIGNED_IN,
    ("delete", "/api/v1/me/tokens/{token_id}"): SIGNED_IN,
    ("get", "/api/v1/users"): Action.READ,
    ("get", "/api/v1/users/{name}"): Action.READ,
    ("post", "/api/v1/users"): Action.MANAGE_USERS,
    ("patch", "/api/v1/users/{name}"): Action.MANAGE_USERS,
    ("delete", "/api/v1/users/{name}"): Action.MANAGE_USERS,
    ("get", "/api/v1/sources"): Action.READ,
    ("post", "/api/v1/sources"): Action.MANAGE_SOURCES,
    ("get", "/api/v1/sources/{name}"): Action.READ,
    ("delete", "/api/v1/sources/{name}"): Action.MANAGE_SOURCES,
    ("get", "/api/v1/datasets"): Action.READ,
    ("post", "/api/v1/datasets"): Action.EDIT_DATASETS,
    ("post", "/api/v1/datasets/upload"): Action.EDIT_DATASETS,
    ("post", "/api/v1/datasets/link"): Action.EDIT_DATASETS,
    ("get", "/api/v1/datasets/{name}"): Action.READ,
    ("get", "/api/v1/datasets/{name}/schema"): Action.READ,
    ("get", "/api/v1/datasets/{name}/sample"): Action.READ,
    ("post", "/api/v1/datasets/{name}/refresh"): Action.EDIT_DATASETS,
    ("delete", "/api/v1/datasets/{name}"): Action.EDIT_DATASETS,
    ("get", "/api/v1/segments"): Action.READ,
    ("get", "/api/v1/segments/schema"): PUBLIC,
    ("post", "/api/v1/segments/validate"): Action.READ,
    ("post", "/api/v1/segments"): Action.EDIT_SEGMENTS,
    ("get", "/api/v1/segments/{name}"): Action.READ,
    ("patch", "/api/v1/segments/{name}"): Action.EDIT_SEGMENTS,
    ("delete", "/api/v1/segments/{name}"): Action.EDIT_SEGMENTS,
    ("get", "/api/v1/segments/{name}/count"): Action.READ,
    ("get", "/api/v1/segments/{name}/preview"): Action.READ,
    ("get", "/api/v1/segments/{name}/explain"): Action.READ,
    ("get", "/api/v1/segments/{name}/sql"): Action.READ,
    ("get", "/api/v1/segments/{name}/history"): Action.READ,
    ("get", "/api/v1/connections"): Action.READ,
    ("post", "/api/v1/connections/authorizations"): Action.MANAGE_CONNECTIONS,
    ("get", "/api/v1/connections/callback"): PUBLIC,
    ("post", "/api/v1/connections"): Action.MANAGE_CONNECTIONS,
    ("get", "/api/v1/connections/{name}"): Action.READ,
    ("get", "/api/v1/connections/{name}/audiences"): Action.EDIT_EXPORTS,
    ("post", "/api/v1/connections/{name}/reauth"): Action.MANAGE_CONNECTIONS,
    ("put", "/api/v1/connections/{name}/access"): Action.MANAGE_CONNECTIONS,
    ("delete", "/api/v1/connections/{name}"): Action.MANAGE_CONNECTIONS,
    ("get", "/api/v1/exports"): Action.READ,
    ("post", "/api/v1/exports"): Action.EDIT_EXPORTS,
    ("get", "/api/v1/exports/{name}"): Action.READ,
    ("patch", "/api/v1/exports/{name}"): Action.EDIT_EXPORTS,
    ("delete", "/api/v1/exports/{name}"): Action.EDIT_EXPORTS,
    ("post", "/api/v1/exports/{name}/validate"): Action.EDIT_EXPORTS,
    ("post", "/api/v1/exports/{name}/duplicate"): Action.EDIT_EXPORTS,
    ("post", "/api/v1/exports/{name}/enable"): Action.EDIT_EXPORTS,
    ("post", "/api/v1/exports/{name}/disable"): Action.EDIT_EXPORTS,
    ("post", "/api/v1/exports/{name}/run"): Action.EDIT_EXPORTS,
    ("post", "/api/v1/exports/{name}/dry-run"): Action.EDIT_EXPORTS,
    ("post", "/api/v1/exports/{name}/clear"): Action.EDIT_EXPORTS,
    ("get", "/api/v1/exports/{name}/runs"): Action.READ,
    ("get", "/api/v1/exports/{name}/readings"): Action.READ,
    ("post", "/api/v1/exports/{name}/audience"): Action.EDIT_EXPORTS,
    ("get", "/api/v1/runs"): Action.READ,
    ("get", "/api/v1/runs/{run_id}"): Action.READ,
    ("get", "/api/v1/runs/{run_id}/progress"): Action.READ,
    ("post", "/api/v1/runs/{run_id}/cancel"): Action.EDIT_EXPORTS,
    ("post", "/api/v1/runs/{run_id}/approve"): Action.EDIT_EXPORTS,
    ("post", "/api/v1/runs/{run_id}/dismiss"): Action.EDIT_EXPORTS,
    ("get", "/api/v1/runs/{run_id}/rejects.csv"): Action.READ,
    ("get", "/api/v1/alerts/events"): SIGNED_IN,
    ("get", "/api/v1/alerts/channels"): Action.MANAGE_CONNECTIONS,
    ("post", "/api/v1/alerts/channels"): Action.MANAGE_CONNECTIONS,
    ("delete", "/api/v1/alerts/channels/{name}"): Action.MANAGE_CONNECTIONS,
    ("post", "/api/v1/alerts/channels/{name}/test"): Action.MANAGE_CONNECTIONS,
    ("get", "/api/v1/alerts/deliveries"): Action.MANAGE_CONNECTIONS,
    ("get", "/api/v1/schedule"): Action.READ,
    ("put", "/api/v1/schedule"): Action.MANAGE_SCHEDULE,
    ("get", "/api/v1/audit"): Action.READ,
    ("get", "/api/v1/privacy/suppression-lists"): Action.MANAGE_PRIVACY,
    ("post", "/api/v1/privacy/suppression-lists"): Action.MANAGE_PRIVACY,
    ("post", "/api/v1/privacy/suppression-lists/upload"): Action.MANAGE_PRIVACY,
    ("get", "/api/v1/privacy/suppression-lists/{name}"): Action.MANAGE_PRIVACY,
    ("delete", "/api/v1/privacy/suppression-lists/{name}"): Action.MANAGE_PRIVACY,
    ("post", "/api/v1/privacy/erasures"): Action.MANAGE_PRIVACY,
    ("get", "/api/v1/privacy/erasures"): Action.MANAGE_PRIVACY,
    ("get", "/api/v1/privacy/erasures/{erasure_id}"): Action.MANAGE_PRIVACY,
    ("post", "/api/v1/privacy/erasures/{erasure_id}/resume"): Action.MANAGE_PRIVACY,
    ("get", "/api/v1/privacy/report"): Action.MANAGE_PRIVACY,
    ("post", "/api/v1/privacy/sweep"): Action.MANAGE_PRIVACY,
    ("get", "/api/v1/unifications"): Action.READ,
    ("post", "/api/v1/unifications"): Action.EDIT_DATASETS,
    ("get", "/api/v1/unifications/{name}"): Action.READ,
    ("delete", "/api/v1/unifications/{name}"): Action.EDIT_DATASETS,
    ("post", "/api/v1/unifications/{name}/refresh"): Action.EDIT_DATASETS,
    ("get", "/api/v1/unifications/{name}/profiles/{unified_id}"): Action.READ,
}

#: Bodies that make an operation do what its action names (otherwise: required fields).
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("patch", "/api/v1/me"): {"time_zone": "Europe/Paris"},
    ("patch", "/api/v1/users/{name}"): {"role": "viewer"},
    ("post", "/api/v1/users"): {"name": "mallory", "role": "admin", "password": "x" * 12},
    ("post", "/api/v1/sources"): {"name": "nosuch", "url": "postgresql://h/db"},
    ("patch", "/api/v1/segments/{name}"): {"description": "x"},
    ("post", "/api/v1/segments"): {
        "name": "more",
        "dataset": "customers",
        "rules": {"field": "country", "op": "=", "value": "GB"},
    },
    ("post", "/api/v1/exports"): {
        "name": "more",
        "connection": "Snap",
        "segments": ["everyone"],
        "email_field": "email",
        "create_audience": True,
    },
    ("patch", "/api/v1/exports/{name}"): {"enabled": False},
    ("post", "/api/v1/alerts/channels"): {"name": "nosuch", "url": "json://127.0.0.1:9/hook"},
    ("put", "/api/v1/schedule"): {"enabled": False, "cron": "0 3 * * *", "timezone": "UTC"},
}


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return _resolve(document, options[0]) if options else {"type": "null"}
    return schema


def _example(document: dict[str, Any], schema: dict[str, Any]) -> Any:
    schema = _resolve(document, schema)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _example(document, props[k]) for k in schema.get("required", [])}
    return {"string": "nosuch", "integer": 1, "number": 1, "boolean": True, "array": []}.get(
        str(kind), "nosuch"
    )


def _request(
    client: httpx.Client, document: dict[str, Any], method: str, path: str
) -> httpx.Response:
    operation = document["paths"][path][method]
    names = {"datasets": "customers", "segments": "gb", "exports": "weekly", "users": "victor",
             "connections": "Snap", "sources": "nosuch"}  # fmt: skip
    url = path.replace("{name}", names.get(path.split("/")[3], "nosuch")).replace(
        "{run_id}", RUN[0]
    )
    url = url.replace("{token_id}", "999999").replace("{erasure_id}", "999999")
    body = operation.get("requestBody", {}).get("content", {})
    if "multipart/form-data" in body:
        return client.request(
            method, url, files={"file": ("x.csv", b"id\n1\n")}, data={"key": "id"}
        )
    if "application/json" in body:
        payload = BODIES.get((method, path)) or _example(
            document, body["application/json"]["schema"]
        )
        if (method, path) == ("post", "/api/v1/datasets"):  # a path the server may read
            payload = {"path": str(IMPORT_FOLDER[0] / "missing.csv"), "key": "id"}
        return client.request(method, url, json=payload)
    return client.request(method, url)


IMPORT_FOLDER: list[Any] = []
RUN: list[str] = ["999999"]


def _order(item: tuple[tuple[str, str], Action | str]) -> tuple[bool, str, str]:
    (method, path), _ = item
    return (method == "delete", path, method)


def _allowed(action: Action | str, role: Role) -> bool:
    if action in (PUBLIC, SIGNED_IN):
        return True
    assert isinstance(action, Action)
    return role in _ALLOWED[action]


def test_every_operation_answers_as_the_permission_table_says(profiles: Api) -> None:
    api = profiles
    connect_via_api(api, share=True)
    assert add_export_via_api(api, api.admin).status_code == 201
    IMPORT_FOLDER[:] = api.ctx.settings.import_folder_paths
    queued = api.admin.post("/api/v1/exports/weekly/dry-run")
    assert queued.status_code == 202, queued.text
    RUN[:] = [str(queued.json()["id"])]
    document = api.admin.get("/api/openapi.json").json()
    found = {
        (method, path)
        for path, operations in document["paths"].items()
        for method in operations
        if path.startswith("/api/v1")
    }
    assert found - set(OPERATIONS) == set(), "operations missing from the matrix"
    assert set(OPERATIONS) - found == set(), "operations the server no longer has"
    wrong: list[str] = []
    rows = 0
    with api.client() as anonymous:
        callers: dict[str, httpx.Client] = {"anonymous": anonymous}
        callers |= {role.value: api.clients[role] for role in (Role.VIEWER, Role.CONTRIBUTOR)}
        callers["admin"] = api.clients[Role.ADMIN]
        for (method, path), action in sorted(OPERATIONS.items(), key=_order):
            for caller, client in callers.items():
                answer = _request(client, document, method, path)
                rows += 1
                got = answer.status_code
                if got >= 500:
                    wrong.append(f"{caller} {method.upper()} {path}: {got}")
                elif caller == "anonymous":
                    if action != PUBLIC and got != 401:
                        wrong.append(f"anonymous {method.upper()} {path}: {got}, not 401")
                elif not _allowed(action, Role(caller)):
                    if got != 403:
                        wrong.append(f"{caller} {method.upper()} {path}: {got}, not 403")
                elif got == 403 and "sign-in is unknown" in answer.text:
                    continue  # the made-up OAuth state is refused, after the role check
                elif got in (401, 403) and action != PUBLIC:
                    wrong.append(f"{caller} {method.upper()} {path}: {got} ({answer.text})")
    print(f"\nauthorization matrix: {len(OPERATIONS)} operations x 4 callers = {rows} requests")
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize("action", list(Action))
def test_every_action_of_the_table_is_exercised(action: Action) -> None:
    assert action in OPERATIONS.values()
