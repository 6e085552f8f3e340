"""Workers anywhere: ``audiencesync worker`` processes with their own home folders sharing
one PostgreSQL control database, one secret key and one S3 bucket (a real S3-compatible
server, moto), and one rate budget per access token.

Needs AUDIENCESYNC_TEST_DATABASE_URL (PostgreSQL) and moto; skips with the reason otherwise.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from audiencesync.control.context import Context
from audiencesync.control.models import Role
from audiencesync.control.permissions import Actor
from audiencesync.control.sync_models import Run
from audiencesync.emulator.testing import EmulatorHandle, running_emulator, start_emulator_process
from audiencesync.profiles import linked, store
from audiencesync.segments import service as segments
from audiencesync.segments.rules import parse_rules
from audiencesync.settings import Settings
from audiencesync.sync import exports, runs
from audiencesync.sync.exports import ExportSpec
from audiencesync.sync.runs import TERMINAL
from tests.conftest import _initialised, make_actors, own_postgres_database
from tests.s3_server import S3Server
from tests.snap_helpers import connect, emulator_settings

pytestmark = pytest.mark.postgres

SECRET = "one key for every machine"
EVERYONE = {"field": "customer_id", "op": "is not null"}


def email_hash(email: str) -> str:
    """Snap's email hash, computed here independently of the product."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def worker_env(settings: Settings, home: Path) -> dict[str, str]:
    """What an ``audiencesync worker`` on another machine is given: its own home, and the
    shared database, key and storage."""
    secret = settings.snapchat_client_secret
    assert secret is not None
    assert settings.database_url is not None
    env = {
        "AUDIENCESYNC_HOME": str(home),
        "AUDIENCESYNC_DATABASE_URL": settings.database_url,
        "AUDIENCESYNC_SECRET_KEY": SECRET,
        "AUDIENCESYNC_SNAPCHAT_API_URL": settings.snapchat_api_url,
        "AUDIENCESYNC_SNAPCHAT_AUTH_URL": settings.snapchat_auth_url,
        "AUDIENCESYNC_SNAPCHAT_CLIENT_ID": settings.snapchat_client_id or "",
        "AUDIENCESYNC_SNAPCHAT_CLIENT_SECRET": secret.get_secret_value(),
        "AUDIENCESYNC_BATCH_SIZE": "20",
        "AUDIENCESYNC_RUN_LEASE_SECONDS": "30",
        "AUDIENCESYNC_HTTP_BACKOFF_BASE_SECONDS": "0.01",
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }
    if settings.storage_url:
        env["AUDIENCESYNC_STORAGE_URL"] = settings.storage_url
        env["AUDIENCESYNC_STORAGE_ENDPOINT_URL"] = settings.storage_endpoint_url or ""
        env.update({k: v for k, v in os.environ.items() if k.startswith("AWS_")})
    return env


@contextmanager
def workers(envs: list[dict[str, str]], logs: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``audiencesync worker`` processes, stopped (SIGTERM) at the end."""
    processes = []
    try:
        for number, env in enumerate(envs):
            with (logs / f"worker{number}.log").open("w") as stderr:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "audiencesync", "worker", "--idle-seconds", "0.05"],
                        env=env, stdout=subprocess.DEVNULL, stderr=stderr,
                    )
                )  # fmt: skip
        yield processes
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for(ctx: Context, admin: Actor, run_id: int, timeout: float = 180) -> runs.RunView:
    deadline = time.monotonic() + timeout
    while True:
        view = runs.get_run(ctx, admin, run_id)
        if view.status in TERMINAL:
            return view
        assert time.monotonic() < deadline, f"run {run_id} is still {view.status}"
        time.sleep(0.1)


def worker_pid(ctx: Context, run_id: int) -> int:
    """The process id of the worker that ran ``run_id`` (``host:pid``)."""
    with ctx.db.session() as session:
        worker = session.scalar(select(Run.worker).where(Run.id == run_id))
    assert worker is not None
    return int(worker.split(":")[1])


@pytest.fixture
def source_database() -> Iterator[str]:
    """A PostgreSQL database of its own for the linked table (the control database is
    never a profile source)."""
    with own_postgres_database() as url:
        yield url


def _settings(home: Path, database_url: str, emulator: EmulatorHandle, **extra: str) -> Settings:
    settings = Settings(
        home=home, database_url=database_url, secret_key=SecretStr(SECRET), user=None, **extra
    )
    return emulator_settings(settings, emulator)


def _write_csv(path: Path, ids: range | list[int]) -> set[str]:
    lines = ["customer_id,email"] + [f"{n},User{n}@Example.com " for n in ids]
    path.write_text("\n".join(lines) + "\n")
    return {email_hash(f"user{n}@example.com") for n in ids}


def _write_table(url: str, ids: list[int]) -> set[str]:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DROP TABLE IF EXISTS people")
        connection.execute("CREATE TABLE people (customer_id bigint primary key, email text)")
        with connection.cursor().copy("COPY people (customer_id, email) FROM STDIN") as copy:
            for n in ids:
                copy.write_row((n, f"p{n}@crm.example"))
    return {email_hash(f"p{n}@crm.example") for n in ids}


def test_runs_alternate_between_two_homes_sharing_a_bucket_and_stay_exact(
    tmp_path: Path,
    postgres_schema_url: str,
    s3_server: S3Server,
    s3_settings: dict[str, str],
    source_database: str,
) -> None:
    with running_emulator() as emulator:
        first = _settings(tmp_path / "first", postgres_schema_url, emulator, **s3_settings)
        second = first.model_copy(update={"home": tmp_path / "second"})
        ctx = _initialised(first)
        other = Context.open(second)  # the second machine, for its own import
        try:
            admin = make_actors(ctx)[Role.ADMIN]
            connect(ctx, admin, "Snap")
            files_expected = _write_csv(tmp_path / "customers.csv", range(1, 121))
            # Imported once, on the second machine: the first reads it from the bucket.
            store.import_file(other, admin, tmp_path / "customers.csv", key="customer_id",
                              name="customers")  # fmt: skip
            crm_ids = list(range(1, 81))
            crm_expected = _write_table(source_database, crm_ids)
            linked.link_url(ctx, admin, "crm", url=source_database, table="people",
                            key="customer_id")  # fmt: skip
            for name, dataset in (("files", "customers"), ("linked", "crm")):
                segments.create_segment(ctx, admin, name, dataset=dataset,
                                        rules=parse_rules(EVERYONE))  # fmt: skip
            audiences = {}
            for name in ("files", "linked"):
                audiences[name] = str(emulator.create_segment_directly(name)["id"])
                exports.add_export(
                    ctx, admin,
                    ExportSpec(name=name, connection="Snap", segments=(name,),
                               email_field="email", audience_id=audiences[name], mode="mirror",
                               max_removal_share=1.0),
                )  # fmt: skip
            envs = [worker_env(first, first.home), worker_env(first, second.home)]
            held = {"files": set[str](), "linked": set[str]()}
            for round_number in range(3):
                # One machine's worker at a time, so the runs alternate between the homes.
                env = envs[round_number % 2]
                with workers([env], tmp_path) as (active,):
                    for name, expected in (("files", files_expected), ("linked", crm_expected)):
                        run_id = runs.request_run(ctx, admin, name)
                        view = wait_for(ctx, admin, run_id)
                        where = f"round {round_number}, export {name}"
                        assert view.status == "succeeded", (where, view.errors)
                        assert worker_pid(ctx, run_id) == active.pid, where
                        assert emulator.members(audiences[name]) == expected, where
                        # Exactly the difference was sent: nothing unchanged went again.
                        assert view.counts["added"].get("email", 0) == len(expected - held[name])
                        assert view.counts["removed"].get("email", 0) == len(
                            held[name] - expected
                        ), where
                        held[name] = expected
                # The data changes between rounds: some leave, some arrive.
                low, high = 1 + 10 * (round_number + 1), 121 + 15 * (round_number + 1)
                files_expected = _write_csv(tmp_path / "customers.csv", range(low, high))
                refresher = other if round_number % 2 else ctx
                store.refresh(refresher, admin, "customers")
                crm_ids = [n for n in crm_ids if n % 7 != round_number] + [
                    200 + round_number * 10 + k for k in range(8)
                ]
                crm_expected = _write_table(source_database, crm_ids)
        finally:
            other.close()
            ctx.close()


def test_two_workers_on_one_connection_never_exceed_the_rate_limit_together(
    tmp_path: Path, postgres_schema_url: str
) -> None:
    # The emulator's own limiter is off: it counts what arrives, it does not refuse. In a
    # process of its own, so its clock of arrivals does not wait on this one's threads.
    with start_emulator_process(
        "--auto-approve", "--processing-seconds", "0", "--rate-limit", "0"
    ) as emulator:
        settings = _settings(tmp_path / "home", postgres_schema_url, emulator)
        ctx = _initialised(settings)
        try:
            admin = make_actors(ctx)[Role.ADMIN]
            connect(ctx, admin, "Snap")
            _write_csv(tmp_path / "customers.csv", range(1, 801))
            store.import_file(ctx, admin, tmp_path / "customers.csv", key="customer_id",
                              name="customers")  # fmt: skip
            segments.create_segment(ctx, admin, "everyone", dataset="customers",
                                    rules=parse_rules(EVERYONE))  # fmt: skip
            for name in ("a", "b"):
                audience = str(emulator.create_segment_directly(name)["id"])
                exports.add_export(
                    ctx, admin,
                    ExportSpec(name=name, connection="Snap", segments=("everyone",),
                               email_field="email", audience_id=audience),
                )  # fmt: skip
            envs = [worker_env(settings, settings.home) for _ in range(2)]
            with workers(envs, tmp_path) as processes:
                emulator.clear_requests()
                run_ids = [runs.request_run(ctx, admin, name) for name in ("a", "b")]
                views = [wait_for(ctx, admin, run_id) for run_id in run_ids]
            assert [v.status for v in views] == ["succeeded", "succeeded"], views
            # Both workers sent at once, or the test would prove nothing.
            assert {worker_pid(ctx, r) for r in run_ids} == {p.pid for p in processes}
            first, second = sorted(views, key=lambda v: v.started_at or v.queued_at)
            assert first.finished_at is not None
            assert second.started_at is not None
            assert second.started_at < first.finished_at, "the two runs did not overlap"
            rates = emulator.request_rates()
            assert len(rates) == 1, rates  # one connection: one access token
            # 800 emails in batches of 20: 40 add requests per export, and a read or two.
            assert rates[0]["requests"] >= 80, rates
            assert rates[0]["max_in_any_second"] <= 10, rates
        finally:
            ctx.close()
