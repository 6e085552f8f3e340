"""Second review of issue 13: the control database cannot be a source under a scheme, a
port, a hostaddr or a service the URL checks missed, because what the connection reached
is checked too; query-string passwords never reach a message; DuckDB table functions and
unknown catalogs are not tables."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from audiencesync.control.models import Source
from audiencesync.profiles import sources
from tests.integration.api.conftest import Api

LINK = "/api/v1/datasets/link"
SOURCES = "/api/v1/sources"
SECRET = "hunter2SECRET"


def _refused(api: Api, url: str, name: str = "c") -> str:
    answer = api.admin.post(SOURCES, json={"name": name, "url": url})
    assert answer.status_code in (400, 403), (url, answer.text)
    detail: str = answer.json()["detail"]
    return detail


def test_other_schemes_are_refused_with_one_sentence(api: Api, crm_db: Path) -> None:
    control = api.ctx.home / "control.db"
    for url in [
        f"file://{control}",  # Ibis opened this as SQLite: the control database
        f"file://{crm_db}",
        "risingwave://postgres@127.0.0.1:5432/postgres",
        "mysql://root@127.0.0.1/mysql",
    ]:
        detail = _refused(api, url)
        assert "PostgreSQL, SQLite or DuckDB" in detail, detail
        assert detail.count(". ") == 0
        assert "Traceback" not in detail
    assert api.admin.get(SOURCES).json() == []


def _pg_parts(api: Api) -> tuple[str, str, int, str]:
    url = api.ctx.settings.control_database_url
    if not url.startswith("postgresql"):
        pytest.skip("the control database is SQLite in this variant")
    parts = urlsplit(url)
    return parts.username or "postgres", parts.path.lstrip("/"), parts.port or 5432, parts.query


def test_postgres_spellings_the_url_check_missed_are_refused(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, database, port, _ = _pg_parts(api)
    service_file = tmp_path / "pg_service.conf"
    service_file.write_text(f"[ctl]\nhost=127.0.0.1\nport={port}\ndbname={database}\nuser={user}\n")
    monkeypatch.setenv("PGSERVICEFILE", str(service_file))
    spellings = [
        f"postgresql://{user}@nosuch.invalid:{port}/{database}?hostaddr=127.0.0.1",
        f"postgresql://{user}@127.0.0.1:0{port}/{database}",
        f"postgresql://{user}@127.0.0.1:+{port}/{database}",
    ]
    for number, url in enumerate(spellings):
        detail = _refused(api, url, f"c{number}")
        assert "control database" in detail, (url, detail)
    for url in ["postgresql://?service=ctl", f"postgresql://{user}@127.0.0.1/x?passfile=/etc/pw"]:
        detail = _refused(api, url)
        assert "option points elsewhere" in detail, detail
    assert api.admin.get(SOURCES).json() == []


def test_what_the_connection_reached_is_checked_whatever_the_url(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A spelling nobody thought of yet: the URL check says "not the control database".
    monkeypatch.setattr(sources, "is_control_database", lambda url, control: False)
    control = api.ctx.settings.control_database_url
    detail = _refused(api, control)
    assert "control database" in detail, detail
    assert api.admin.get(SOURCES).json() == []


def test_a_source_that_stops_answering_shows_no_query_password(api: Api, crm_db: Path) -> None:
    assert api.admin.post(SOURCES, json={"name": "crm", "url": f"duckdb:///{crm_db}"}).is_success
    linked = api.contributor.post(
        LINK, json={"name": "crm", "source": "crm", "table": "people", "key": "id"}
    )
    assert linked.status_code == 201, linked.text
    # The source's server moves away (port 1 refuses); its URL holds secrets in the query.
    gone = (
        f"postgresql://reader@127.0.0.1:1/shop?password={SECRET}&sslpassword={SECRET}2"
        "&sslmode=prefer&connect_timeout=2"
    )
    with api.ctx.db.session() as session:
        row = session.scalar(select(Source).where(Source.name == "crm"))
        assert row is not None
        row.url_encrypted = api.ctx.secrets.encrypt(gone)
    for client in (api.viewer, api.admin):
        answer = client.get("/api/v1/datasets/crm/sample")
        assert answer.status_code == 400, answer.text
        detail = answer.json()["detail"]
        for hidden in (SECRET, "password", "postgresql://", "reader"):
            assert hidden not in detail, detail
        assert "127.0.0.1:1/shop" in detail, detail
    added = api.admin.post(SOURCES, json={"name": "x", "url": gone})
    assert added.status_code == 400
    assert SECRET not in added.text
    assert "127.0.0.1:1/shop" in added.json()["detail"]


def test_logs_show_query_values_as_stars() -> None:
    from audiencesync.profiles.linked import redacted_url

    shown = redacted_url(f"postgresql://u:pw@h:5432/db?password={SECRET}&sslmode=require")
    assert SECRET not in shown
    assert ":pw@" not in shown
    assert "sslmode=require" in shown
    assert "password=***" in shown


@pytest.mark.parametrize(
    "table",
    ["memory.main.x", "nosuchcat.main.x", "nosuch.x", "test_all_types", "range",
     "main.test_all_types", "read_csv('/etc/passwd')"],
)  # fmt: skip
def test_duckdb_names_that_are_not_tables_are_refused(api: Api, crm_db: Path, table: str) -> None:
    assert api.admin.post(SOURCES, json={"name": "crm", "url": f"duckdb:///{crm_db}"}).is_success
    answer = api.contributor.post(
        LINK, json={"name": "x", "source": "crm", "table": table, "key": "id"}
    )
    assert answer.status_code == 400, answer.text
    assert "there is no table" in answer.json()["detail"]


@pytest.mark.parametrize("table", ["pragma_database_list", "main.PRAGMA_database_list"])
def test_duckdb_pragma_functions_are_catalogs(api: Api, crm_db: Path, table: str) -> None:
    assert api.admin.post(SOURCES, json={"name": "crm", "url": f"duckdb:///{crm_db}"}).is_success
    answer = api.contributor.post(
        LINK, json={"name": "x", "source": "crm", "table": table, "key": "seq"}
    )
    assert answer.status_code == 403, answer.text
    assert str(crm_db) not in answer.text


def test_a_duckdb_view_still_links(api: Api, tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "views.duckdb"
    connection = duckdb.connect(str(path))
    connection.execute(
        "CREATE SCHEMA crm; CREATE TABLE crm.people (id INTEGER); INSERT INTO crm.people "
        "VALUES (1), (2); CREATE VIEW crm.recent AS SELECT * FROM crm.people WHERE id > 1"
    )
    connection.close()
    assert api.admin.post(SOURCES, json={"name": "v", "url": f"duckdb:///{path}"}).is_success
    for name, table in (("people", "crm.people"), ("recent", "crm.recent")):
        answer = api.contributor.post(
            LINK, json={"name": name, "source": "v", "table": table, "key": "id"}
        )
        assert answer.status_code == 201, answer.text
    assert api.viewer.get("/api/v1/datasets/recent").json()["row_count"] == 1


def test_a_duckdb_view_cannot_read_the_servers_files(api: Api, tmp_path: Path) -> None:
    import duckdb

    secret = tmp_path / "outside.csv"
    secret.write_text("id,token\n1,s3cr3t-token\n")
    path = tmp_path / "views.duckdb"
    connection = duckdb.connect(str(path))
    connection.execute(f"CREATE VIEW leak AS SELECT * FROM read_csv('{secret}')")
    connection.close()
    url = f"duckdb:///{path}?enable_external_access=true"
    assert api.admin.post(SOURCES, json={"name": "v", "url": url}).is_success
    answer = api.contributor.post(
        LINK, json={"name": "leak", "source": "v", "table": "leak", "key": "id"}
    )
    assert answer.status_code == 400, answer.text
    assert "s3cr3t" not in answer.text
