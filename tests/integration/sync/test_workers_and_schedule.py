"""Workers share the queue without running an export twice; schedules fire from cron."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audiencesync.control.context import Context
from audiencesync.control.models import Role
from audiencesync.control.permissions import Actor
from audiencesync.emulator.testing import EmulatorHandle
from audiencesync.errors import PermissionDeniedError, UserInputError
from audiencesync.sync import exports, runs, schedule, scheduler
from audiencesync.sync.exports import ExportSpec
from tests.snap_helpers import connect, load_profiles


@pytest.fixture
def three_exports(
    ctx: Context, actors: dict[Role, Actor], emulator: EmulatorHandle, tmp_path: Path
) -> list[str]:
    admin = actors[Role.ADMIN]
    connect(ctx, admin, "Snap")
    load_profiles(ctx, admin, tmp_path)
    names = []
    for number in range(3):
        audience = str(emulator.create_segment_directly(f"A{number}")["id"])
        name = f"e{number}"
        exports.add_export(
            ctx, admin,
            ExportSpec(name=name, connection="Snap", segments=("everyone",),
                       email_field="email", audience_id=audience,
                       schedule="*/15 * * * *" if number == 0 else "system"),
        )  # fmt: skip
        names.append(name)
    return names


def test_concurrent_claims_give_each_run_to_one_worker(
    ctx: Context, actors: dict[Role, Actor], three_exports: list[str]
) -> None:
    queued = {runs.request_run(ctx, actors[Role.ADMIN], name) for name in three_exports}
    claimed: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def worker(number: int) -> None:
        barrier.wait()
        while (run_id := runs.claim(ctx, f"w{number}")) is not None:
            with lock:
                claimed.append(run_id)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(queued)  # every run claimed exactly once


def test_two_worker_loops_never_run_one_export_at_the_same_time(
    ctx: Context, actors: dict[Role, Actor], three_exports: list[str]
) -> None:
    admin = actors[Role.ADMIN]
    for _ in range(2):
        for name in three_exports:
            runs.request_run(ctx, admin, name)
        stop = threading.Event()
        loops = [
            threading.Thread(
                target=scheduler.worker_loop, args=(ctx, stop),
                kwargs={"worker": f"w{n}", "idle_seconds": 0.05},
            )
            for n in range(2)
        ]  # fmt: skip
        for loop in loops:
            loop.start()
        deadline = datetime.now(UTC) + timedelta(seconds=60)
        while datetime.now(UTC) < deadline:
            if all(r.status not in ("queued", "running") for r in runs.list_runs(ctx, admin)):
                break
            stop.wait(0.1)
        stop.set()
        for loop in loops:
            loop.join()
    history = runs.list_runs(ctx, admin, limit=50)
    assert len(history) == 6
    assert {r.status for r in history} == {"succeeded"}
    for name in three_exports:
        spans = sorted((r.started_at, r.finished_at) for r in history if r.export == name)
        assert len(spans) == 2
        (_, first_end), (second_start, _) = spans
        assert first_end is not None
        assert second_start is not None
        assert first_end <= second_start  # never overlapping


def test_schedules_fire_from_cron_with_an_injected_clock(
    ctx: Context, actors: dict[Role, Actor], three_exports: list[str]
) -> None:
    admin = actors[Role.ADMIN]
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    # Off by default: nothing but the export with its own cron schedule fires.
    assert schedule.get_schedule(ctx, admin).enabled is False
    quiet = scheduler.tick(ctx, start - timedelta(minutes=1))
    assert quiet.system_fired is False
    later = scheduler.tick(ctx, start + timedelta(minutes=16))
    assert later.queued == ["e0"]
    assert scheduler.tick(ctx, start + timedelta(minutes=17)).queued == []

    schedule.set_schedule(ctx, admin, enabled=True, cron="0 3 * * *", timezone="Europe/Paris")
    assert scheduler.tick(ctx, start + timedelta(minutes=18)).system_fired is False
    fired = scheduler.tick(ctx, (start + timedelta(days=2)).replace(hour=4))
    assert fired.system_fired is True
    assert fired.refreshed == ["customers"]
    assert set(fired.evaluated) == {"everyone", "gb"}
    # e0 still has its run queued from its own schedule; the others follow the system one.
    assert sorted(fired.queued) == ["e1", "e2"]
    assert any("e0" in p for p in fired.problems)


def test_only_admins_change_the_schedule(ctx: Context, actors: dict[Role, Actor]) -> None:
    with pytest.raises(PermissionDeniedError, match="cannot change the refresh schedule"):
        schedule.set_schedule(ctx, actors[Role.CONTRIBUTOR], enabled=True, cron="0 3 * * *")
    with pytest.raises(UserInputError, match="is not a cron expression"):
        schedule.set_schedule(ctx, actors[Role.ADMIN], enabled=True, cron="at three")
    with pytest.raises(UserInputError, match="unknown time zone"):
        schedule.set_schedule(
            ctx, actors[Role.ADMIN], enabled=True, cron="0 3 * * *", timezone="Mars"
        )
