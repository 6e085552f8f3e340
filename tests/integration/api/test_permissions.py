"""Each row of the permission table (connections issue), for each role, over the API."""

from __future__ import annotations

import pytest

from audiencesync.control.models import Role
from tests.conftest import PASSWORD
from tests.integration.api.conftest import Api, add_export_via_api, connect_via_api

ROLES = (Role.ADMIN, Role.CONTRIBUTOR, Role.VIEWER)


def test_manage_users_is_for_administrators_only(api: Api) -> None:
    body = {"name": "dave", "role": "viewer", "password": PASSWORD}
    for role in (Role.CONTRIBUTOR, Role.VIEWER):
        refused = api.clients[role].post("/api/v1/users", json=body)
        assert refused.status_code == 403
        assert "cannot manage users" in refused.json()["detail"]
    assert api.admin.post("/api/v1/users", json=body).status_code == 201
    for role in ROLES:  # everyone reads the list
        names = {u["name"] for u in api.clients[role].get("/api/v1/users").json()}
        assert names == {"admin", "carol", "dave", "victor"}
    assert api.contributor.patch("/api/v1/users/dave", json={"role": "admin"}).status_code == 403
    changed = api.admin.patch("/api/v1/users/dave", json={"role": "contributor"})
    assert changed.json()["role"] == "contributor"
    assert api.viewer.delete("/api/v1/users/dave").status_code == 403
    assert api.admin.delete("/api/v1/users/dave").status_code == 204
    assert api.admin.get("/api/v1/users/dave").status_code == 404


def test_users_change_their_own_password_only(api: Api) -> None:
    own = api.viewer.patch(
        "/api/v1/users/victor", json={"password": "a new password", "current_password": PASSWORD}
    )
    assert own.status_code == 200
    other = api.viewer.patch("/api/v1/users/carol", json={"password": "a new password"})
    assert other.status_code == 403
    short = api.admin.patch("/api/v1/users/carol", json={"password": "short"})
    assert short.status_code == 400
    assert "too short" in short.json()["detail"]


def test_the_last_administrator_stays(api: Api) -> None:
    answer = api.admin.patch("/api/v1/users/admin", json={"role": "viewer"})
    assert answer.status_code == 409
    assert "last administrator" in answer.json()["detail"]


def test_the_schedule_is_read_by_all_and_changed_by_administrators(api: Api) -> None:
    for role in ROLES:
        shown = api.clients[role].get("/api/v1/schedule").json()
        assert shown["enabled"] is False
        assert shown["next_run_at"] is None
    body = {"enabled": True, "cron": "0 4 * * *", "timezone": "Europe/Paris"}
    for role in (Role.CONTRIBUTOR, Role.VIEWER):
        assert api.clients[role].put("/api/v1/schedule", json=body).status_code == 403
    saved = api.admin.put("/api/v1/schedule", json=body).json()
    assert saved["enabled"] is True
    assert saved["next_run_at"] is not None
    assert saved["updated_by"] == "admin"
    bad = api.admin.put("/api/v1/schedule", json={**body, "cron": "every day"})
    assert bad.status_code == 400
    assert "cron expression" in bad.json()["detail"]


def test_connections_are_made_and_changed_by_administrators_only(api: Api) -> None:
    for role in (Role.CONTRIBUTOR, Role.VIEWER):
        refused = api.clients[role].post("/api/v1/connections/authorizations", json={})
        assert refused.status_code == 403
    made = connect_via_api(api, "Snap", share=False)
    assert made["full"] is True
    assert made["export_user"] == "admin"
    assert made["ad_accounts"][0]["id"] == api.emulator.ad_account_id
    for role in (Role.CONTRIBUTOR, Role.VIEWER):
        client = api.clients[role]
        assert client.put("/api/v1/connections/Snap/access",
                          json={"share_with_contributors": True}).status_code == 403  # fmt: skip
        assert client.delete("/api/v1/connections/Snap").status_code == 403
        assert client.post("/api/v1/connections/Snap/reauth", json={"state": "x"}).status_code in (
            403,
            404,
        )


def test_who_sees_what_of_a_connection(api: Api) -> None:
    connect_via_api(api, "Private", share=False)
    connect_via_api(api, "Shared", share=True)
    admin = api.admin.get("/api/v1/connections").json()
    assert [c["name"] for c in admin] == ["Private", "Shared"]
    assert all(c["full"] and c["platform_user_name"] for c in admin)
    # Contributors: display name and type, only of connections shared with them.
    contributor = api.contributor.get("/api/v1/connections").json()
    assert contributor == [_name_and_type("Shared")]
    assert api.contributor.get("/api/v1/connections/Private").status_code == 404
    # Viewers: display name and type of every connection.
    viewer = api.viewer.get("/api/v1/connections").json()
    assert viewer == [_name_and_type("Private"), _name_and_type("Shared")]
    assert api.viewer.get("/api/v1/connections/Private").json() == _name_and_type("Private")


def _name_and_type(name: str) -> dict[str, object]:
    return {
        "name": name, "type": "snapchat", "full": False, "shared_with_contributors": None,
        "status": None, "export_user": None, "consent_by": None, "consent_at": None,
        "consent_version": None, "platform_user_name": None, "organization_ids": None,
        "ad_accounts": None, "created_by": None, "created_at": None, "authenticated_at": None,
        "exports": None,
    }  # fmt: skip


def test_exports_by_role_and_connection_sharing(profiles: Api) -> None:
    api = profiles
    connect_via_api(api, "Private", share=False)
    connect_via_api(api, "Shared", share=True)
    # Admin: any connection. Contributor: shared ones only. Viewer: none.
    assert add_export_via_api(api, api.admin, "admin-private", "Private").status_code == 201
    refused = add_export_via_api(api, api.contributor, "carol-private", "Private")
    assert refused.status_code == 404
    assert "you can use" in refused.json()["detail"]
    assert add_export_via_api(api, api.contributor, "carol-shared", "Shared").status_code == 201
    assert add_export_via_api(api, api.viewer, "victor", "Shared").status_code == 403
    # Everyone reads every export.
    for role in ROLES:
        names = [e["name"] for e in api.clients[role].get("/api/v1/exports").json()]
        assert names == ["admin-private", "carol-shared"]
    # Change, run and remove follow the same rule.
    for path in ("/run", "/dry-run", "/disable", "/validate"):
        assert api.contributor.post(f"/api/v1/exports/admin-private{path}").status_code == 403
        assert api.viewer.post(f"/api/v1/exports/carol-shared{path}").status_code == 403
    assert (
        api.contributor.patch(
            "/api/v1/exports/admin-private", json={"mode": "add-only"}
        ).status_code
        == 403
    )
    assert api.contributor.delete("/api/v1/exports/admin-private").status_code == 403
    assert api.viewer.delete("/api/v1/exports/carol-shared").status_code == 403
    changed = api.contributor.patch("/api/v1/exports/carol-shared", json={"mode": "add-only"})
    assert changed.status_code == 200
    assert changed.json()["mode"] == "add-only"
    queued = api.contributor.post("/api/v1/exports/carol-shared/run")
    assert queued.status_code == 202
    assert queued.json()["trigger"] == "api"
    assert api.admin.post("/api/v1/exports/admin-private/dry-run").status_code == 202
    # Taking sharing back does not break the contributor's existing export for reading.
    api.admin.put("/api/v1/connections/Shared/access", json={"share_with_contributors": False})
    assert api.contributor.get("/api/v1/exports/carol-shared").status_code == 200
    assert api.contributor.post("/api/v1/exports/carol-shared/disable").status_code == 403


@pytest.mark.parametrize("role", [Role.ADMIN, Role.CONTRIBUTOR])
def test_segments_and_datasets_are_edited_by_admins_and_contributors(
    profiles: Api, role: Role
) -> None:
    client = profiles.clients[role]
    made = client.post(
        "/api/v1/segments",
        json={"name": "fr", "dataset": "customers",
              "rules": {"field": "country", "op": "=", "value": "FR"}},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    assert client.patch("/api/v1/segments/fr", json={"description": "France"}).status_code == 200
    assert client.delete("/api/v1/segments/fr").status_code == 204
    assert client.post("/api/v1/datasets/customers/refresh").status_code == 200


def test_viewers_read_but_change_no_segment_or_dataset(profiles: Api) -> None:
    viewer = profiles.viewer
    refused = viewer.post(
        "/api/v1/segments",
        json={
            "name": "fr",
            "dataset": "customers",
            "rules_text": "{field: country, op: '=', value: FR}",
        },
    )
    assert refused.status_code == 403
    assert "viewer" in refused.json()["detail"]
    assert viewer.patch("/api/v1/segments/gb", json={"description": "x"}).status_code == 403
    assert viewer.delete("/api/v1/segments/gb").status_code == 403
    assert viewer.post("/api/v1/datasets/customers/refresh").status_code == 403
    assert viewer.delete("/api/v1/datasets/customers").status_code == 403
    # ... and reads segments, sizes and profiles' schema.
    assert viewer.get("/api/v1/segments/gb/count").json()["size"] == 2
    assert [c["name"] for c in viewer.get("/api/v1/datasets/customers/schema").json()][:2] == [
        "customer_id",
        "email",
    ]
    assert viewer.get("/api/v1/runs").status_code == 200
    assert viewer.get("/api/v1/audit").status_code == 200
