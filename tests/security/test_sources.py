"""Findings 1, 2 and 7 of issue 13: linked tables go through sources administrators own;
nobody links the control database or a system catalog; the server reads paths only from
listed folders; import errors quote no value of the file and leave no folder behind."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from audiencesync.control.models import Dataset, Source
from tests.conftest import POSTGRES_URL
from tests.integration.api.conftest import Api

LINK = "/api/v1/datasets/link"
SOURCES = "/api/v1/sources"


def control_spellings(api: Api, tmp_path: Path) -> list[str]:
    """The control database under every spelling an administrator might give."""
    url = api.ctx.settings.control_database_url
    if url.startswith("sqlite"):
        home = api.ctx.home
        alias = tmp_path / "alias.db"
        alias.symlink_to(home / "control.db")
        return [
            url,
            f"sqlite:///{home}/../home/control.db",
            f"sqlite:///{alias}",
            f"sqlite:///{home / 'control.db'}?mode=ro",
        ]
    parts = urlsplit(url)
    database = parts.path.lstrip("/")
    user = parts.username or "postgres"
    port = parts.port or 5432
    return [
        url,
        f"postgresql://{user}@localhost/{database}",
        f"postgresql://{user}@127.0.0.1:{port}/{database}?sslmode=disable",
        f"postgresql://{user}@[::1]:{port}/{database}",
        f"postgresql+psycopg://{user}@0.0.0.0:{port}/{database}",
        f"postgresql:///{database}?host=127.0.0.1&user={user}",
        f"postgresql://{user}@127.0.0.1:{port}/postgres?dbname={database}",
        f"postgres://{user}@LOCALHOST:{port}/{database}?options=-csearch_path%3Dpublic",
    ]


def test_a_contributor_cannot_link_by_url_any_more(api: Api) -> None:
    # On main this linked the control database's users table for any contributor.
    answer = api.contributor.post(
        LINK,
        json={"name": "u", "url": api.ctx.settings.control_database_url, "table": "users",
              "key": "id"},
    )  # fmt: skip
    assert answer.status_code in (400, 422), answer.text
    assert api.contributor.get("/api/v1/datasets").json() == []


def test_only_administrators_add_sources_and_nobody_sees_their_url(api: Api, crm_db: Path) -> None:
    url = f"duckdb:///{crm_db}"
    assert api.contributor.post(SOURCES, json={"name": "crm", "url": url}).status_code == 403
    assert api.viewer.post(SOURCES, json={"name": "crm", "url": url}).status_code == 403
    added = api.admin.post(SOURCES, json={"name": "crm", "url": url})
    assert added.status_code == 201, added.text
    listed = api.viewer.get(SOURCES)
    assert listed.status_code == 200
    assert [(s["name"], s["backend"], s["location"]) for s in listed.json()] == [
        ("crm", "duckdb", str(crm_db))
    ]
    assert "duckdb:///" not in listed.text
    with api.ctx.db.session() as session:
        row = session.scalar(select(Source).where(Source.name == "crm"))
        assert row is not None
        assert str(crm_db) not in row.url_encrypted
    linked = api.contributor.post(
        LINK, json={"name": "crm", "source": "crm", "table": "people", "key": "id"}
    )
    assert linked.status_code == 201, linked.text
    sample = api.viewer.get("/api/v1/datasets/crm/sample").json()
    assert sorted(r["id"] for r in sample["rows"]) == [1, 2]
    busy = api.admin.delete(f"{SOURCES}/crm")
    assert busy.status_code == 409
    assert "crm" in busy.json()["detail"]
    assert api.contributor.delete(f"{SOURCES}/crm").status_code == 403
    assert api.admin.delete("/api/v1/datasets/crm").status_code == 204
    assert api.admin.delete(f"{SOURCES}/crm").status_code == 204
    assert api.viewer.get(SOURCES).json() == []


def test_the_control_database_cannot_be_a_source_by_any_spelling(api: Api, tmp_path: Path) -> None:
    for number, url in enumerate(control_spellings(api, tmp_path)):
        answer = api.admin.post(SOURCES, json={"name": f"c{number}", "url": url})
        assert answer.status_code == 403, (url, answer.text)
        assert "control database" in answer.json()["detail"]
    assert api.admin.get(SOURCES).json() == []


@pytest.mark.parametrize(
    "table", ["sqlite_master", "main.sqlite_schema", "sqlite_temp_master", "SQLITE_MASTER"]
)
def test_sqlite_catalogs_cannot_be_linked(api: Api, sqlite_db: Path, table: str) -> None:
    assert api.admin.post(SOURCES, json={"name": "crm", "url": f"sqlite:///{sqlite_db}"}).is_success
    answer = api.contributor.post(
        LINK, json={"name": "x", "source": "crm", "table": table, "key": "name"}
    )
    assert answer.status_code == 403, answer.text
    assert "system catalog" in answer.json()["detail"]


@pytest.mark.parametrize(
    "table",
    ["pg_catalog.pg_authid", "pg_authid", "pg_shadow", "information_schema.tables",
     "PG_CATALOG.pg_user", "pg_toast.x"],
)  # fmt: skip
def test_postgres_catalogs_cannot_be_linked(api: Api, table: str) -> None:
    if not POSTGRES_URL:
        pytest.skip("needs AUDIENCESYNC_TEST_DATABASE_URL")
    other = urlsplit(POSTGRES_URL)._replace(path="/postgres", query="").geturl()
    added = api.admin.post(SOURCES, json={"name": "server", "url": other})
    assert added.status_code == 201, added.text
    answer = api.contributor.post(
        LINK, json={"name": "x", "source": "server", "table": table, "key": "rolname"}
    )
    assert answer.status_code == 403, answer.text
    # Through a search_path in the URL, an unqualified name is looked up where it lands.
    sneaky = f"{other}?options=-csearch_path%3Dinformation_schema"
    assert api.admin.post(SOURCES, json={"name": "sneaky", "url": sneaky}).is_success
    answer = api.contributor.post(
        LINK, json={"name": "y", "source": "sneaky", "table": "tables", "key": "table_name"}
    )
    assert answer.status_code == 403, answer.text


def test_server_paths_are_read_only_from_listed_folders(
    api: Api, import_folder: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "app.env"
    secret.write_text("id,value\n1,SNAPCHAT_CLIENT_SECRET=hunter2\n")
    for path in ("/etc/passwd", str(secret), str(import_folder / ".." / "app.env")):
        answer = api.contributor.post("/api/v1/datasets", json={"path": path, "key": "id"})
        assert answer.status_code == 403, answer.text
        assert "AUDIENCESYNC_IMPORT_FOLDERS" in answer.json()["detail"]
        assert "root:x" not in answer.text
        assert "hunter2" not in answer.text
    allowed = import_folder / "people.csv"
    allowed.write_text("id,email\n1,ann@example.com\n")
    ok = api.contributor.post("/api/v1/datasets", json={"path": str(allowed), "key": "id"})
    assert ok.status_code == 201, ok.text
    uploaded = api.contributor.post(
        "/api/v1/datasets/upload", files={"file": ("u.csv", b"id\n1\n2\n")}, data={"key": "id"}
    )
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["row_count"] == 2


def test_the_web_form_refuses_paths_outside_the_folders(api: Api) -> None:
    # The page posts to the same service check; the sentence is the same.
    from audiencesync.errors import PermissionDeniedError
    from audiencesync.profiles import store

    with pytest.raises(PermissionDeniedError, match="AUDIENCESYNC_IMPORT_FOLDERS"):
        store.check_import_folder(api.ctx, Path("/etc/passwd"))


FILES = {
    # A file whose first line is data: the error used to print it as "columns".
    "passwd.csv": b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/bin/false\n",
    # A ragged row: the error used to quote a customer's email and phone as columns.
    "ragged.csv": b"id,email,phone\n1,ann@example.com,+15550001111\n"
    b"2,bob@example.com,+15550002222,extra\n3,cy@example.com,+15550003333\n",
    "nokey.csv": b"email,phone\nann@example.com,+15550001111\n",
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_failed_imports_quote_no_value_and_leave_no_folder(api: Api, name: str) -> None:
    answer = api.contributor.post(
        "/api/v1/datasets/upload",
        files={"file": (name, FILES[name])},
        data={"key": "id", "name": "people"},
    )
    assert answer.status_code == 400, answer.text
    detail = answer.json()["detail"]
    for value in ("root", "/bin/bash", "ann@", "bob@", "+1555", "5550"):
        assert value not in detail, detail
    assert "key" in detail
    assert not (api.ctx.home / "profiles" / "people").exists()
    assert not list((api.ctx.home / "uploads").glob("*/*"))
    with api.ctx.db.session() as session:
        assert session.scalar(select(Dataset)) is None
