"""Honest failure modes when the control database goes away (finding 6).

A PostgreSQL database of the test's own is made unreachable (connections refused and the
open ones ended) and brought back; SQLite homes live on a real tmpfs that is filled up or
made read-only. Every command, request, run and loop must then say what is wrong in one
sentence, and recover by itself when the database answers again.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from audiencesync.api import auth
from audiencesync.control.context import Context
from audiencesync.control.models import Role
from audiencesync.emulator.testing import EmulatorHandle, running_emulator
from audiencesync.errors import DatabaseUnavailableError
from audiencesync.identifiers import hash_batch
from audiencesync.profiles import store
from audiencesync.profiles.synthetic import write_profiles
from audiencesync.segments import service as segments
from audiencesync.segments.rules import parse_rules
from audiencesync.settings import Settings
from audiencesync.sync import exports, runs
from audiencesync.sync.exports import ExportSpec
from audiencesync.sync.scheduler import Outage, scheduler_loop, worker_loop
from audiencesync.types import IdentifierType
from tests.cli_runner import run_cli
from tests.conftest import PASSWORD, _initialised, make_actors
from tests.integration.api.conftest import AppServer
from tests.reliability.pg_outage import OwnDatabase
from tests.snap_helpers import connect, emulator_settings

SENTENCE = "the control database is unreachable ("
ACTION = "check AUDIENCESYNC_DATABASE_URL / disk space."


def assert_honest(code: int, stderr: str) -> None:
    assert code == DatabaseUnavailableError.exit_code, stderr
    assert SENTENCE in stderr, stderr
    assert ACTION in stderr, stderr
    assert "Traceback" not in stderr, stderr
    assert "not set up" not in stderr, stderr


@pytest.fixture
def own() -> Iterator[OwnDatabase]:
    database = OwnDatabase()
    try:
        yield database
    finally:
        database.drop()


def _settings(tmp_path: Path, own: OwnDatabase) -> Settings:
    return Settings(home=tmp_path / "home", database_url=own.url, secret_key=None, user=None)


@pytest.fixture
def pg_ctx(tmp_path: Path, own: OwnDatabase) -> Iterator[Context]:
    context = _initialised(_settings(tmp_path, own))
    yield context
    context.close()


# The CLI -----------------------------------------------------------------------------


def test_cli_on_a_closed_port_says_unreachable_without_the_password(tmp_path: Path) -> None:
    url = "postgresql://postgres:s3cret-pass@127.0.0.1:9/audiencesync"
    for command in (["exports", "list"], ["users", "list"], ["init", "--password-stdin"]):
        result = run_cli(
            *command, home=tmp_path / "home", env={"AUDIENCESYNC_DATABASE_URL": url},
            input_text=PASSWORD + "\n",
        )  # fmt: skip
        assert_honest(result.code, result.stderr)
        assert "s3cret-pass" not in result.output
        assert "refused" in result.stderr


def test_cli_while_its_postgresql_database_is_away_then_back(
    pg_ctx: Context, own: OwnDatabase
) -> None:
    env = {"AUDIENCESYNC_DATABASE_URL": own.url}
    home = pg_ctx.home
    with own.outage():
        for command in (["exports", "list"], ["runs", "list"], ["segments", "list"]):
            result = run_cli(*command, home=home, env=env)
            assert_honest(result.code, result.stderr)
            assert "not currently accepting connections" in result.stderr
    result = run_cli("exports", "list", home=home, env=env)
    assert result.code == 0, result.output


def test_a_home_never_initialised_is_still_not_set_up(tmp_path: Path) -> None:
    result = run_cli("exports", "list", home=tmp_path / "nowhere")
    assert result.code == 6, result.output
    assert "not set up in this home folder" in result.stderr
    assert not (tmp_path / "nowhere").exists()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 16 MB tmpfs (needs the right to mount; skipped with the reason otherwise)."""
    where = tmp_path / "mnt"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(where)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"a full/read-only disk needs a tmpfs mount: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_cli_on_a_full_then_read_only_disk_says_unreachable(tmpfs: Path) -> None:
    home = tmpfs / "home"
    made = run_cli("init", "--password-stdin", home=home, input_text=PASSWORD + "\n")
    assert made.code == 0, made.output
    assert run_cli("exports", "list", home=home).code == 0
    filler = tmpfs / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    for command in (["exports", "list"], ["users", "list"]):
        result = run_cli(*command, home=home)
        assert_honest(result.code, result.stderr)
    filler.unlink()
    assert run_cli("exports", "list", home=home).code == 0
    remount = ["mount", "-o", "remount,ro", str(tmpfs)]
    subprocess.run(remount, check=True)
    try:
        result = run_cli("exports", "list", home=home)
        assert_honest(result.code, result.stderr)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(tmpfs)], check=True)


def _fill(disk: Path, leave: int) -> Path:
    """Fill ``disk`` to the last byte, then free ``leave`` bytes (for the control database)."""
    filler = disk / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def test_an_import_on_a_full_disk_says_so_and_changes_nothing(tmpfs: Path, tmp_path: Path) -> None:
    """Disk full during import (main said the file "could not be read as csv")."""
    home = tmpfs / "home"
    made = run_cli("init", "--password-stdin", home=home, input_text=PASSWORD + "\n")
    assert made.code == 0, made.output
    people = tmp_path / "people.csv"  # outside the full disk: only the import's writes fail
    with people.open("w") as out:
        out.write("id,email,phone\n")
        for i in range(60_000):  # random text: compressed, it still needs megabytes
            out.write(f"{i},{os.urandom(12).hex()}@example.com,+1555{i:07d}\n")
    filler = _fill(tmpfs, leave=128 << 10)
    result = run_cli("profiles", "import", str(people), "--key", "id", home=home)
    assert result.code == 10, result.output
    assert "the disk holding the home folder is full" in result.stderr, result.stderr
    assert "free some space" in result.stderr
    assert "could not be read" not in result.stderr
    assert "Traceback" not in result.stderr
    assert "@example.com" not in result.stderr
    assert not (home / "profiles" / "people").exists()
    listed = run_cli("profiles", "list", "--json", home=home)
    assert listed.code == 0, listed.output
    assert "people" not in listed.stdout
    filler.unlink()
    again = run_cli("profiles", "import", str(people), "--key", "id", home=home)
    assert again.code == 0, again.output
    assert "60,000 profiles" in again.stdout


def test_an_upload_on_a_full_disk_is_503_with_the_sentence(tmpfs: Path) -> None:
    """The API's upload is written under the home folder first (main answered 500)."""
    ctx = _initialised(Settings(home=tmpfs / "home", database_url=None, secret_key=None))
    server = AppServer(ctx)
    try:
        admin = make_actors(ctx)[Role.ADMIN]
        token = auth.create_token(ctx, admin, "disk").token
        filler = _fill(tmpfs, leave=64 << 10)
        body = b"id,email\n" + b"".join(
            f"{i},{os.urandom(12).hex()}@example.com\n".encode() for i in range(20_000)
        )
        with httpx.Client(base_url=server.url, timeout=60) as client:
            answer = client.post(
                "/api/v1/datasets/upload",
                headers={"Authorization": f"Bearer {token}"},
                files={"file": ("people.csv", body)},
                data={"key": "id"},
            )
        assert answer.status_code == 503, answer.text
        assert "the disk holding the home folder is full" in answer.json()["detail"]
        assert "@example.com" not in answer.text
        assert not list((ctx.home / store.UPLOADS).glob("*/*"))
        filler.unlink()
    finally:
        server.stop()
        ctx.close()


# The API -----------------------------------------------------------------------------


def test_api_answers_503_with_the_sentence_then_recovers(pg_ctx: Context, own: OwnDatabase) -> None:
    admin = make_actors(pg_ctx)[Role.ADMIN]
    token = auth.create_token(pg_ctx, admin, "outage").token
    server = AppServer(pg_ctx)
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as client:
            assert client.get("/api/v1/exports").status_code == 200
            with own.outage():
                for path in ("/api/v1/exports", "/api/v1/runs", "/api/v1/me"):
                    answer = client.get(path)
                    assert answer.status_code == 503, answer.text
                    # The sentence alone: the driver's reason names the database.
                    assert answer.json()["detail"] == DatabaseUnavailableError.public_message
                    assert own.name not in answer.text
                    assert answer.headers["retry-after"].isdigit()
                page = client.get("/exports")
                assert page.status_code == 503, page.text
                assert "control database is unreachable" in page.text
                assert own.name not in page.text
            assert client.get("/api/v1/exports").status_code == 200
    finally:
        server.stop()


# A run that loses its database --------------------------------------------------------


def test_a_cli_run_that_loses_its_database_ends_failed_once_it_is_back(
    tmp_path: Path, own: OwnDatabase
) -> None:
    with running_emulator(latency_ms=60) as emulator:
        ctx = _initialised(emulator_settings(_settings(tmp_path, own), emulator))
        try:
            _a_run_loses_its_database(ctx, own, emulator, tmp_path)
        finally:
            ctx.close()


def _a_run_loses_its_database(
    ctx: Context, own: OwnDatabase, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    admin = make_actors(ctx)[Role.ADMIN]
    connect(ctx, admin, "Snap")
    source = write_profiles(tmp_path / "customers.parquet", 4000)
    store.import_file(ctx, admin, source, key="customer_id", name="customers")
    segments.create_segment(
        ctx, admin, "all", dataset="customers",
        rules=parse_rules({"field": "customer_id", "op": "is not null"}),
    )  # fmt: skip
    audience = str(emulator.create_segment_directly("Everyone")["id"])
    exports.add_export(
        ctx, admin,
        ExportSpec(name="main", connection="Snap", segments=("all",), email_field="email",
                   audience_id=audience),
    )  # fmt: skip
    secret = ctx.settings.snapchat_client_secret
    assert secret is not None
    env = {
        "AUDIENCESYNC_HOME": str(ctx.home),
        "AUDIENCESYNC_DATABASE_URL": own.url,
        "AUDIENCESYNC_SNAPCHAT_API_URL": emulator.api_url,
        "AUDIENCESYNC_SNAPCHAT_AUTH_URL": emulator.auth_url,
        "AUDIENCESYNC_SNAPCHAT_CLIENT_ID": emulator.client_id,
        "AUDIENCESYNC_SNAPCHAT_CLIENT_SECRET": secret.get_secret_value(),
        "AUDIENCESYNC_BATCH_SIZE": "50",
        "AUDIENCESYNC_HTTP_MAX_CONCURRENCY": "1",
        "AUDIENCESYNC_RUN_LEASE_SECONDS": "120",
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "audiencesync", "exports", "run", "main"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        listed = runs.list_runs(ctx, admin, export="main", limit=1)
        if listed and listed[0].progress.get("done", 0) > 0:
            break
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never started sending"
        time.sleep(0.05)
    run_id = listed[0].id
    with own.outage():
        time.sleep(2.0)
        assert process.poll() is None, "the run gave up while the database was away"
    back = time.monotonic()
    stdout, stderr = process.communicate(timeout=60)
    assert time.monotonic() - back < 30, "the run was not recorded soon after the database"
    assert process.returncode != 0, stdout + stderr
    assert "Traceback" not in stderr, stderr
    view = runs.get_run(ctx, admin, run_id)
    assert view.status == "failed", (view.status, view.errors)
    assert view.finished_at is not None
    assert any(SENTENCE in error for error in view.errors), view.errors
    assert stderr.count("could not renew its lease") <= 1, stderr
    # The next run resumes from what Snapchat confirmed and leaves the audience exact.
    again = runs.run_now(ctx, admin, "main")
    assert again.status == "succeeded", again.errors
    table = store.sample(ctx, admin, "customers", limit=10**9)
    hashed = hash_batch(IdentifierType.EMAIL, table.column("email").combine_chunks())
    assert emulator.members(audience) == set(hashed.hashes.drop_null().to_pylist())


# Workers and the scheduler -------------------------------------------------------------


def test_worker_and_scheduler_back_off_with_one_line_per_outage(
    pg_ctx: Context, own: OwnDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    stop = threading.Event()
    worker = Outage("worker w", first=0.02, longest=0.2)
    scheduler = Outage("scheduler", first=0.02, longest=0.2)
    threads = [
        threading.Thread(
            target=worker_loop, args=(pg_ctx, stop),
            kwargs={"worker": "w", "idle_seconds": 0.02, "outage": worker},
        ),
        threading.Thread(
            target=scheduler_loop, args=(pg_ctx, stop),
            kwargs={"every_seconds": 0.02, "outage": scheduler},
        ),
    ]  # fmt: skip
    caplog.set_level(logging.INFO)
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.3)
        for _ in range(2):
            with own.outage():
                time.sleep(1.5)
                assert worker.failures >= 4
                assert scheduler.failures >= 4
            deadline = time.monotonic() + 10
            while worker.failures or scheduler.failures:
                assert time.monotonic() < deadline, "the loops did not recover"
                time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert worker.outages == 2
    assert scheduler.outages == 2
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 4, [r.getMessage() for r in warnings]
    assert all(SENTENCE in r.getMessage() for r in warnings)
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
