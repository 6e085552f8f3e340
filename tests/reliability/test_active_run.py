"""One active run per export, however many requests race to queue one (finding 4).

Real threads against real SQLite and PostgreSQL databases, through the service and over
HTTP: the database's unique index decides, and every loser is told the winner's id.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, inspect, select, text

from audiencesync.control.context import Context
from audiencesync.control.models import Role
from audiencesync.control.sync_models import Run
from audiencesync.emulator.testing import EmulatorHandle
from audiencesync.errors import ActiveRunError
from audiencesync.sync import exports, runs
from audiencesync.sync.exports import ExportSpec
from tests.conftest import make_actors
from tests.integration.api.conftest import Api, add_export_via_api, connect_via_api
from tests.snap_helpers import connect, load_profiles

RACERS = 6


def _active_runs(ctx: Context) -> int:
    with ctx.db.session() as session:
        count = session.scalar(
            select(func.count()).select_from(Run).where(Run.status.in_(["queued", "running"]))
        )
    return int(count or 0)


@pytest.mark.parametrize("rounds", [3])
def test_racing_requests_queue_one_run_and_the_others_get_its_id(
    ctx: Context, emulator: EmulatorHandle, tmp_path: Path, rounds: int
) -> None:
    admin = make_actors(ctx)[Role.ADMIN]
    connect(ctx, admin, "Snap")
    load_profiles(ctx, admin, tmp_path)
    audience = str(emulator.create_segment_directly("Customers")["id"])
    exports.add_export(
        ctx, admin,
        ExportSpec(name="main", connection="Snap", segments=("everyone",),
                   email_field="email", audience_id=audience),
    )  # fmt: skip
    for _ in range(rounds):
        start = threading.Barrier(RACERS)

        def request(barrier: threading.Barrier) -> int | ActiveRunError:
            barrier.wait()
            try:
                return runs.request_run(ctx, admin, "main")
            except ActiveRunError as error:
                return error

        with ThreadPoolExecutor(RACERS) as pool:
            answers = list(pool.map(request, [start] * RACERS))
        queued = [a for a in answers if isinstance(a, int)]
        refused = [a for a in answers if isinstance(a, ActiveRunError)]
        assert len(queued) == 1, f"{len(queued)} runs queued by {RACERS} racing requests"
        assert len(refused) == RACERS - 1
        assert {r.run_id for r in refused} == set(queued)
        assert all(f"run {queued[0]}" in r.message for r in refused)
        assert _active_runs(ctx) == 1
        done = runs.run_pending(ctx, "w")
        assert done is not None
        assert done.id == queued[0]
        assert done.status == "succeeded", done.errors
        assert _active_runs(ctx) == 0


def test_racing_on_demand_runs_start_one_and_the_others_get_its_id(
    ctx: Context, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """``exports run`` starts a run already running: the same rule holds for it."""
    admin = make_actors(ctx)[Role.ADMIN]
    connect(ctx, admin, "Snap")
    load_profiles(ctx, admin, tmp_path)
    audience = str(emulator.create_segment_directly("Customers")["id"])
    exports.add_export(
        ctx, admin,
        ExportSpec(name="main", connection="Snap", segments=("everyone",),
                   email_field="email", audience_id=audience),
    )  # fmt: skip
    start = threading.Barrier(RACERS)

    def start_now() -> int | ActiveRunError:
        start.wait()
        try:
            return runs._start_now(
                ctx, admin, "main", trigger="on_demand", dry_run=False, full=False
            )
        except ActiveRunError as refused:
            return refused

    with ThreadPoolExecutor(RACERS) as pool:
        answers = list(pool.map(lambda _: start_now(), range(RACERS)))
    started = [a for a in answers if isinstance(a, int)]
    assert len(started) == 1, f"{len(started)} runs started by {RACERS} racing requests"
    assert {a.run_id for a in answers if isinstance(a, ActiveRunError)} == set(started)
    view = runs.execute_claimed(ctx, started[0])
    assert view.status == "succeeded", view.errors


def test_six_simultaneous_api_requests_queue_one_run(profiles: Api) -> None:
    api = profiles
    connect_via_api(api, "Snap")
    made = add_export_via_api(api, api.admin)
    assert made.status_code == 201, made.text
    start = threading.Barrier(RACERS)
    clients = [api.client_for(api.actors[Role.ADMIN]) for _ in range(RACERS)]

    def post(client: httpx.Client) -> httpx.Response:
        start.wait()
        return client.post("/api/v1/exports/weekly/run")

    try:
        with ThreadPoolExecutor(RACERS) as pool:
            answers = list(pool.map(post, clients))
    finally:
        for client in clients:
            client.close()
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [202] + [409] * (RACERS - 1), [a.text for a in answers]
    winner = next(a.json() for a in answers if a.status_code == 202)
    for answer in answers:
        if answer.status_code == 409:
            body = answer.json()
            assert body["run"] == winner["id"]
            assert f"already has run {winner['id']} queued" in body["detail"]
    listed = api.viewer.get("/api/v1/exports/weekly/runs").json()
    assert [r["id"] for r in listed] == [winner["id"]]


def test_the_upgrade_cancels_the_extra_runs_the_race_had_queued(
    ctx: Context, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """A database that already holds duplicates (main's race) upgrades cleanly."""
    from alembic import command

    from audiencesync.control.db import _alembic_config

    admin = make_actors(ctx)[Role.ADMIN]
    connect(ctx, admin, "Snap")
    load_profiles(ctx, admin, tmp_path)
    audience = str(emulator.create_segment_directly("Customers")["id"])
    exports.add_export(
        ctx, admin,
        ExportSpec(name="main", connection="Snap", segments=("everyone",),
                   email_field="email", audience_id=audience),
    )  # fmt: skip
    first = runs.request_run(ctx, admin, "main")
    config = _alembic_config()
    with ctx.db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0009_sources")  # the revision before the index
        # What five racing requests queued on main: the queued run and four copies, in the
        # columns the table had then. The queued run is still there on SQLite too: the
        # table rebuilds on the way down no longer cascade into runs (migrations/env.py).
        columns = [c["name"] for c in inspect(connection).get_columns("runs")]
        quoted = ", ".join(f'"{name}"' for name in columns if name != "id")
        still = connection.execute(text("SELECT count(*) FROM runs WHERE id = :id"), {"id": first})
        assert still.scalar() == 1
        for _ in range(4):
            connection.execute(
                text(f"INSERT INTO runs ({quoted}) SELECT {quoted} FROM runs WHERE id = :id"),
                {"id": first},
            )
    assert _active_runs(ctx) == 5
    ctx.db.migrate()
    assert _active_runs(ctx) == 1
    kept = runs.list_runs(ctx, admin, export="main", limit=10)
    assert [r.id for r in kept if r.status == "queued"] == [first]
    cancelled = [r for r in kept if r.status == "cancelled"]
    assert len(cancelled) == 4
    assert all("one active run per export" in r.errors[0] for r in cancelled)
