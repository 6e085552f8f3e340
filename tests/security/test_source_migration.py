"""Migration 0009: links made before sources existed keep working through a source of
their own; one that pointed at the control database stops working with a sentence."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from alembic import command
from sqlalchemy import text

from audiencesync.control import users
from audiencesync.control.context import Context
from audiencesync.control.db import Database, _alembic_config
from audiencesync.errors import PermissionDeniedError
from audiencesync.profiles import sources, store
from audiencesync.settings import Settings

LEGACY = (
    "INSERT INTO datasets (name, key_column, kind, source, options, version, row_count, "
    "columns, link_url_encrypted) VALUES (:name, 'id', 'link', :source, :options, 1, 2, "
    '\'[{"name": "id", "type": "INTEGER"}]\', :cipher)'
)


def test_legacy_links_move_into_sources_and_keep_working(tmp_path: Path) -> None:
    crm = tmp_path / "crm.duckdb"
    connection = duckdb.connect(str(crm))
    connection.execute("CREATE TABLE people (id INTEGER); INSERT INTO people VALUES (1), (2);")
    connection.close()
    settings = Settings(home=tmp_path / "home", database_url=None, secret_key=None, user=None)
    settings.resolved_home.mkdir(parents=True)
    database = Database(settings.control_database_url)
    config = _alembic_config()
    with database.engine.begin() as bind:
        config.attributes["connection"] = bind
        command.upgrade(config, "0005_oauth_channel")
    ctx = Context(settings=settings, db=database)
    legacy = {
        "crm": f"duckdb:///{crm}",
        "own": settings.control_database_url,  # the finding: a link to the control database
    }
    with database.engine.begin() as bind:
        for name, url in legacy.items():
            bind.execute(
                text(LEGACY),
                {"name": name, "source": f"{url} table people",
                 "options": '{"table": "people", "key": "id"}',
                 "cipher": ctx.secrets.encrypt(url)},
            )  # fmt: skip
    database.migrate()
    users.create_first_admin(ctx, "admin", "correct horse battery")
    admin = users.resolve_actor(ctx, "admin")
    shown = {s.name: (s.backend, s.location, s.datasets) for s in sources.list_sources(ctx, admin)}
    assert shown["link-crm"] == ("duckdb", str(crm), ("crm",))
    assert shown["link-own"][2] == ("own",)
    assert store.get_dataset(ctx, admin, "crm").source == "source link-crm table people"
    assert store.sample(ctx, admin, "crm", limit=5).column("id").to_pylist() == [1, 2]
    with pytest.raises(PermissionDeniedError, match="own control database"):
        store.sample(ctx, admin, "own", limit=5)
    ctx.close()


def test_long_names_and_query_passwords_migrate_on_every_database(
    tmp_path: Path, database_url: str | None
) -> None:
    # Two dataset names sharing their first 95 characters used to give one source name
    # twice (a unique violation on PostgreSQL); a legacy description kept ?password=.
    settings = Settings(
        home=tmp_path / "home", database_url=database_url, secret_key=None, user=None
    )
    settings.resolved_home.mkdir(parents=True)
    database = Database(settings.control_database_url)
    config = _alembic_config()
    with database.engine.begin() as bind:
        config.attributes["connection"] = bind
        command.upgrade(config, "0006_audience_readings")
    ctx = Context(settings=settings, db=database)
    long = "a" * 95
    described = "postgresql://reader:***@db.example:5432/shop?password=hunter2SECRET table people"
    with database.engine.begin() as bind:
        for name in (long + "-one1", long + "-two2", "short"):
            bind.execute(
                text(LEGACY),
                {"name": name, "source": described,
                 "options": '{"table": "people", "key": "id"}',
                 "cipher": ctx.secrets.encrypt("postgresql://reader:pw@db.example/shop")},
            )  # fmt: skip
        bind.execute(
            text(
                "INSERT INTO audit_log (at, actor, action, target, before, after) VALUES "
                "(CURRENT_TIMESTAMP, 'admin', 'dataset.link', 'dataset:short', NULL, :after)"
            ),
            {"after": '{"source": "' + described + '", "rows": 2}'},
        )
    database.migrate()
    users.create_first_admin(ctx, "admin", "correct horse battery")
    admin = users.resolve_actor(ctx, "admin")
    shown = {s.name: s.datasets for s in sources.list_sources(ctx, admin)}
    assert len(shown) == 3
    assert shown["link-short"] == ("short",)
    assert sorted(d for ds in shown.values() for d in ds) == sorted(
        [long + "-one1", long + "-two2", "short"]
    )
    assert all(len(name) <= 100 for name in shown)
    for dataset in store.list_datasets(ctx, admin):
        owner = next(name for name, ds in shown.items() if dataset.name in ds)
        assert dataset.source == f"source {owner} table people"
    with database.engine.connect() as bind:
        logged = " ".join(str(r) for r in bind.execute(text("SELECT after FROM audit_log")))
        markers = bind.execute(text("SELECT count(*) FROM audiencesync_install")).scalar()
    assert "hunter2SECRET" not in logged
    assert "password=***" in logged
    assert markers == 1
    ctx.close()
