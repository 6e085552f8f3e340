"""Finding 1 of reviewer 13: a refresh asked for through the API or the web UI reads a
file imported by path only while it is in AUDIENCESYNC_IMPORT_FOLDERS, links followed,
as an import by path does (it used to re-read the recorded path unchecked)."""

from __future__ import annotations

from pathlib import Path

from audiencesync.control.models import Role
from audiencesync.profiles import store
from tests.integration.api.conftest import Api
from tests.integration.api.test_auth import sign_in
from tests.integration.api.test_web_pages import csrf_of

SECRET = "SNAPCHAT_CLIENT_SECRET=hunter2"


def _secret(tmp_path: Path) -> Path:
    secret = tmp_path / "app.env"
    secret.write_text(f"id,email\n1,{SECRET}\n")
    return secret


def test_a_file_swapped_for_a_link_to_a_secret_is_not_refreshed(
    api: Api, import_folder: Path, tmp_path: Path
) -> None:
    people = import_folder / "people.csv"
    people.write_text("id,email\n1,ann@example.com\n")
    imported = api.contributor.post(
        "/api/v1/datasets", json={"path": str(people), "key": "id", "name": "p0"}
    )
    assert imported.status_code == 201, imported.text
    people.unlink()
    people.symlink_to(_secret(tmp_path))

    again = api.contributor.post("/api/v1/datasets", json={"path": str(people), "key": "id"})
    assert again.status_code == 403, again.text
    refreshed = api.contributor.post("/api/v1/datasets/p0/refresh")
    assert refreshed.status_code == 403, refreshed.text
    assert "AUDIENCESYNC_IMPORT_FOLDERS" in refreshed.json()["detail"]
    assert "hunter2" not in refreshed.text

    sample = api.viewer.get("/api/v1/datasets/p0/sample")
    assert sample.status_code == 200, sample.text
    assert "hunter2" not in sample.text
    assert sample.json()["rows"] == [{"id": 1, "email": "ann@example.com"}]


def test_a_file_the_command_line_imported_is_refreshed_only_by_the_command_line(
    api: Api, tmp_path: Path
) -> None:
    # The CLI (the local user) imports from anywhere; a contributor of the server may
    # not make the server read that path again, through the API or through a page.
    outside = tmp_path / "outside.csv"
    outside.write_text("id,email\n1,ann@example.com\n")
    admin = api.actors[Role.ADMIN]
    store.import_file(api.ctx, admin, outside, key="id", name="local")
    outside.write_text(f"id,email\n1,{SECRET}\n")

    answer = api.contributor.post("/api/v1/datasets/local/refresh")
    assert answer.status_code == 403, answer.text
    assert "AUDIENCESYNC_IMPORT_FOLDERS" in answer.json()["detail"]
    carol, _ = sign_in(api, "carol")
    try:
        page = carol.post(
            "/profiles/local/refresh", data={"csrf_token": csrf_of(carol, "/profiles/local")}
        )
        assert page.status_code == 403, page.text
        assert "hunter2" not in page.text
    finally:
        carol.close()
    assert "hunter2" not in api.viewer.get("/api/v1/datasets/local/sample").text

    # The command line itself still refreshes it.
    view = store.refresh(api.ctx, admin, "local")
    assert view.row_count == 1
    assert "hunter2" in api.viewer.get("/api/v1/datasets/local/sample").text
