"""An edit racing a removal of one export: 409 with a sentence, never 500 (finding 5).

Snapchat is asked outside any control-database transaction: while it answers (slowly,
the emulator adding latency) nothing is held, a removal goes through at once, and the
edit's write then re-reads the export and refuses in plain words.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from audiencesync.control.context import Context
from audiencesync.control.models import Role
from audiencesync.control.permissions import Actor
from audiencesync.emulator.testing import EmulatorHandle
from audiencesync.errors import ConflictError, NotFoundError
from audiencesync.sync import exports
from audiencesync.sync.exports import ExportSpec
from tests.conftest import make_actors
from tests.integration.api.conftest import Api, connect_via_api
from tests.snap_helpers import connect, load_profiles

SLOW_MS = 700


def _spec(name: str, audience: str) -> ExportSpec:
    return ExportSpec(
        name=name, connection="Snap", segments=("everyone",), email_field="email",
        audience_id=audience,
    )  # fmt: skip


def _setup(ctx: Context, emulator: EmulatorHandle, tmp_path: Path) -> tuple[Actor, str]:
    admin = make_actors(ctx)[Role.ADMIN]
    connect(ctx, admin, "Snap")
    load_profiles(ctx, admin, tmp_path)
    audience = str(emulator.create_segment_directly("Customers")["id"])
    exports.add_export(ctx, admin, _spec("main", audience))
    return admin, audience


def _open_transactions(ctx: Context) -> int:
    """Sessions of this database idle inside a transaction (PostgreSQL; 0 elsewhere)."""
    if not ctx.db.url.startswith("postgresql"):
        return 0
    # Only this test's connections: under pytest -n, other workers' tests share the
    # database (each in its schema; the fixture names connections after the schema).
    name = make_url(ctx.db.url).query.get("application_name")
    assert isinstance(name, str), "the test URL names its connections (tests/conftest.py)"
    with ctx.db.engine.connect() as connection:
        found = connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = :name "
                "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        ).scalar_one()
    return int(found)


def test_a_removal_while_an_edit_asks_snapchat_wins_and_the_edit_says_so(
    ctx: Context, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    admin, audience = _setup(ctx, emulator, tmp_path)
    emulator.set_faults(latency_ms=SLOW_MS)
    edited = replace(_spec("main", audience), mode="add-only")
    with ThreadPoolExecutor(1) as pool:
        editing: Future[object] = pool.submit(exports.update_export, ctx, admin, "main", edited)
        time.sleep(SLOW_MS / 1000 / 2)  # the edit is waiting for Snapchat now
        assert _open_transactions(ctx) == 0, "a transaction is open while Snapchat is asked"
        started = time.monotonic()
        exports.remove_export(ctx, admin, "main")
        assert time.monotonic() - started < SLOW_MS / 1000, "the removal waited for the edit"
        with pytest.raises(ConflictError, match="was removed while this change was being checked"):
            editing.result(timeout=30)
    assert exports.list_exports(ctx, admin) == []


def test_two_edits_at_once_keep_one_and_refuse_the_other_in_words(
    ctx: Context, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    admin, audience = _setup(ctx, emulator, tmp_path)
    emulator.set_faults(latency_ms=SLOW_MS)
    slow = replace(_spec("main", audience), mode="add-only")
    with ThreadPoolExecutor(1) as pool:
        editing = pool.submit(exports.update_export, ctx, admin, "main", slow)
        time.sleep(SLOW_MS / 1000 / 2)
        exports.set_enabled(ctx, admin, "main", enabled=False)  # another edit lands first
        with pytest.raises(ConflictError, match="was changed by someone else"):
            editing.result(timeout=30)
    shown = exports.get_export(ctx, admin, "main")
    assert shown.enabled is False
    assert shown.mode == "mirror"


def test_racing_patch_and_delete_over_http_never_answer_500(profiles: Api) -> None:
    api = profiles
    connect_via_api(api, "Snap")
    admin = api.actors[Role.ADMIN]
    rng = random.Random(13)
    seen: dict[str, list[int]] = {"patch": [], "delete": []}
    with api.client_for(admin) as patcher, api.client_for(admin) as deleter:
        for round_ in range(12):
            name = f"race{round_}"
            audience = str(api.emulator.create_segment_directly(name)["id"])
            exports.add_export(api.ctx, admin, _spec(name, audience))
            api.emulator.set_faults(latency_ms=rng.choice([0, 50, 200]))
            start = threading.Barrier(2)

            def patch(
                client: httpx.Client, who: str, delay: float, start: threading.Barrier = start
            ) -> httpx.Response:
                start.wait()
                time.sleep(delay)
                return client.patch(f"/api/v1/exports/{who}", json={"mode": "add-only"})

            def delete(
                client: httpx.Client, who: str, delay: float, start: threading.Barrier = start
            ) -> httpx.Response:
                start.wait()
                time.sleep(delay)
                return client.delete(f"/api/v1/exports/{who}")

            with ThreadPoolExecutor(2) as pool:
                patched = pool.submit(patch, patcher, name, rng.uniform(0, 0.05))
                deleted = pool.submit(delete, deleter, name, rng.uniform(0, 0.25))
                answers = {"patch": patched.result(60), "delete": deleted.result(60)}
            for kind, answer in answers.items():
                seen[kind].append(answer.status_code)
                assert answer.status_code < 500, (kind, answer.status_code, answer.text)
                if answer.status_code >= 400:
                    assert answer.json()["detail"].endswith("."), answer.text
            assert answers["delete"].status_code == 204, answers["delete"].text
            patch_answer = answers["patch"]
            # 404 when the DELETE came first (even between the PATCH's reads), 409 when
            # it came while Snapchat was asked, 200 when the PATCH came first.
            assert patch_answer.status_code in (200, 404, 409), patch_answer.text
    api.emulator.set_faults(latency_ms=0)
    # The races really raced: some edits lost to the removal.
    assert {404, 409} & set(seen["patch"]), seen


def test_a_removal_between_the_reads_of_an_export_is_no_such_export(
    ctx: Context, emulator: EmulatorHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race above, made certain: the export's row is read, then a removal commits,
    then its segments are read (none). The answer is "no such export" (404), not the
    "needs at least one segment" (400) a PATCH built from that half-read used to get."""
    admin, _ = _setup(ctx, emulator, tmp_path)
    read_segments = exports.export_segment_names

    removed: list[bool] = []

    def removed_first(session: object, export_id: int) -> list[str]:
        if not removed:  # once: the removal itself reads the export's segments too
            removed.append(True)
            exports.remove_export(ctx, admin, "main")  # another session, committed
        return read_segments(session, export_id)  # type: ignore[arg-type]

    monkeypatch.setattr(exports, "export_segment_names", removed_first)
    with pytest.raises(NotFoundError, match="there is no export named 'main'"):
        exports.get_export(ctx, admin, "main")
