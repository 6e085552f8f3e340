"""Opening, migrating and encrypting secrets in the control database."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from audiencesync.api import auth
from audiencesync.control import users
from audiencesync.control.context import Context
from audiencesync.control.db import Database, _alembic_config
from audiencesync.control.secrets import SecretBox
from audiencesync.errors import NotSetUpError
from audiencesync.settings import Settings
from audiencesync.wording import for_cli, for_web


def test_an_uninitialised_home_says_to_run_init(settings: Settings) -> None:
    settings.resolved_home.mkdir(parents=True)
    with pytest.raises(NotSetUpError) as caught:
        Context.open(settings)
    # The service says what is wrong and carries the fix; the CLI words it as a command,
    # the web as what to do there.
    assert caught.value.fix is not None
    assert caught.value.fix.kind == "init"
    assert "run `audiencesync init` first" in for_cli(caught.value)
    assert "audiencesync init" not in for_web(caught.value)


def test_migrations_reach_head_and_are_idempotent(settings: Settings) -> None:
    settings.resolved_home.mkdir(parents=True)
    db = Database(settings.control_database_url)
    assert not db.is_initialised()
    db.migrate()
    db.migrate()
    assert db.current_revision() == db.head_revision()
    db.dispose()


def test_sqlite_runs_in_wal_mode(sqlite_ctx: Context) -> None:
    with sqlite_ctx.db.engine.connect() as connection:
        mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
    assert mode == "wal"


def test_generated_key_file_is_owner_only_and_round_trips(tmp_path: Path) -> None:
    box = SecretBox.from_key_file(tmp_path, create=True)
    mode = stat.S_IMODE((tmp_path / "secret.key").stat().st_mode)
    assert mode == 0o600
    token = box.encrypt("refresh-token-value")
    assert "refresh-token-value" not in token
    assert SecretBox.from_key_file(tmp_path, create=False).decrypt(token) == "refresh-token-value"


def test_a_wrong_key_says_which_setting_to_fix(tmp_path: Path) -> None:
    token = SecretBox.from_passphrase("one").encrypt("x")
    with pytest.raises(NotSetUpError, match="AUDIENCESYNC_SECRET_KEY"):
        SecretBox.from_passphrase("two").decrypt(token)
    with pytest.raises(NotSetUpError, match="secret key file"):
        SecretBox.from_key_file(tmp_path / "missing", create=False)


def test_the_time_zone_migration_goes_down_and_up_keeping_users_and_tokens(
    ctx: Context,
) -> None:
    """0014 adds users.time_zone; going back to 0013 drops only that column (SQLite's
    table rebuild would take every session and API token along, through their cascade)."""
    admin = users.resolve_actor(ctx, "admin")
    users.set_time_zone(ctx, admin, "admin", "Europe/Paris")
    token = auth.create_token(ctx, admin, "nightly").token
    assert ctx.db.current_revision() == ctx.db.head_revision()

    def columns() -> set[str]:
        with ctx.db.engine.connect() as bind:
            return {c["name"] for c in inspect(bind).get_columns("users")}

    config = _alembic_config()
    with ctx.db.engine.begin() as bind:
        config.attributes["connection"] = bind
        command.downgrade(config, "0013_rate_windows")
    assert ctx.db.current_revision() == "0013_rate_windows"
    assert "time_zone" not in columns()
    with ctx.db.engine.connect() as bind:
        assert bind.execute(text("SELECT name FROM users")).scalars().all() == ["admin"]
        assert bind.execute(text("SELECT count(*) FROM api_tokens")).scalar() == 1

    ctx.db.migrate()
    assert "time_zone" in columns()
    assert users.resolve_actor(ctx, "admin").time_zone is None  # UTC again, as before 0014
    assert auth.actor_for_token(ctx, token) == users.resolve_actor(ctx, "admin")


def test_the_source_key_migration_keeps_datasets_and_refuses_removing_a_used_source(
    ctx: Context,
) -> None:
    """0015 makes datasets.source_id a foreign key of sources (reviewer 13, finding 3):
    rows are kept, a dataset whose source was already gone keeps no source id, a used
    source cannot be deleted, and SQLite never reuses a removed source's id."""
    config = _alembic_config()
    with ctx.db.engine.begin() as bind:
        config.attributes["connection"] = bind
        command.downgrade(config, "0014_user_time_zone")
    now = datetime.now(UTC)
    with ctx.db.engine.begin() as bind:
        source_id = bind.execute(
            text(
                "INSERT INTO sources (name, backend, location, url_encrypted, created_at) "
                "VALUES ('crm', 'duckdb', '/data/crm.duckdb', 'x', :now) RETURNING id"
            ),
            {"now": now},
        ).scalar_one()
        for name, source in (("kept", source_id), ("orphan", source_id + 1000)):
            bind.execute(
                text(
                    "INSERT INTO datasets (name, key_column, kind, source, options, version, "
                    "row_count, columns, source_id) VALUES (:name, 'id', 'link', 's', '{}', 1, "
                    "2, '[]', :source)"
                ),
                {"name": name, "source": source},
            )

    ctx.db.migrate()
    assert ctx.db.current_revision() == ctx.db.head_revision()
    with ctx.db.engine.connect() as bind:
        rows = bind.execute(text("SELECT name, source_id FROM datasets ORDER BY name")).all()
        assert [tuple(r) for r in rows] == [("kept", source_id), ("orphan", None)]
        with pytest.raises(IntegrityError):
            bind.execute(text("DELETE FROM sources WHERE id = :id"), {"id": source_id})
        bind.rollback()
        # The last source removed: a new one gets another id (SQLite AUTOINCREMENT).
        bind.execute(text("DELETE FROM datasets WHERE name = 'kept'"))
        bind.execute(text("DELETE FROM sources WHERE id = :id"), {"id": source_id})
        again = bind.execute(
            text(
                "INSERT INTO sources (name, backend, location, url_encrypted, created_at) "
                "VALUES ('crm2', 'duckdb', '/data/crm.duckdb', 'x', :now) RETURNING id"
            ),
            {"now": now},
        ).scalar_one()
        assert again != source_id
