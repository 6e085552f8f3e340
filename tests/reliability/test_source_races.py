"""Removing a source while a contributor links a table through it (reviewer 13, finding 3).

Both used to succeed (10 rounds in 12 on PostgreSQL, 6 in 12 on SQLite), leaving a
dataset whose source was gone: the link and the removal each checked, then acted, in
transactions of their own. ``datasets.source_id`` is now a foreign key: whichever comes
second is refused with a sentence (409), never a dataset without its source.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import duckdb
import pytest
from sqlalchemy import select

from audiencesync.control.context import Context
from audiencesync.control.models import Dataset, Role, Source
from audiencesync.control.permissions import Actor
from audiencesync.errors import AudiencesyncError, ConflictError, NotFoundError
from audiencesync.profiles import linked, sources
from tests.conftest import make_actors

ROUNDS = 12


@pytest.fixture
def crm_url(tmp_path: Path) -> str:
    path = tmp_path / "crm.duckdb"
    connection = duckdb.connect(str(path))
    connection.execute("CREATE TABLE people AS SELECT 1 AS id UNION ALL SELECT 2")
    connection.close()
    return f"duckdb:///{path}"


def _dangling(ctx: Context) -> list[str]:
    """Datasets that link through a source that does not exist."""
    with ctx.db.session() as session:
        known = set(session.scalars(select(Source.id)))
        return [
            d.name
            for d in session.scalars(select(Dataset).where(Dataset.source_id.is_not(None)))
            if d.source_id not in known
        ]


def _link(ctx: Context, carol: Actor, name: str, source: str) -> Any:
    return linked.link(ctx, carol, name, source=source, table="people", key="id")


def _run(
    barrier: threading.Barrier, result: dict[str, str], what: str, call: Any, *args: Any
) -> None:
    """``call(*args)`` once both threads are ready; its outcome in ``result[what]``."""
    barrier.wait()
    try:
        call(*args)
        result[what] = "ok"
    except (ConflictError, NotFoundError):
        result[what] = "refused"
    except AudiencesyncError as error:  # anything else is a finding
        result[what] = f"{type(error).__name__}: {error.message}"
    except Exception as error:  # noqa: BLE001 - a 500 in the API
        result[what] = f"crash {type(error).__name__}: {error}"


def test_a_source_removed_while_a_table_is_checked_refuses_the_link(
    ctx: Context, crm_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    actors = make_actors(ctx)
    admin, carol = actors[Role.ADMIN], actors[Role.CONTRIBUTOR]
    sources.add_source(ctx, admin, "crm", url=crm_url)
    check_keys = linked._check_keys

    def removed_meanwhile(*args: Any) -> int:
        sources.remove_source(ctx, admin, "crm")  # no dataset links through it yet
        return check_keys(*args)

    monkeypatch.setattr(linked, "_check_keys", removed_meanwhile)
    with pytest.raises(ConflictError, match="'crm' was removed while dataset 'people'"):
        _link(ctx, carol, "people", "crm")
    assert sources.list_sources(ctx, admin) == []
    with ctx.db.session() as session:
        assert session.scalar(select(Dataset)) is None


def test_a_table_linked_while_the_source_is_removed_keeps_the_source(
    ctx: Context, crm_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    actors = make_actors(ctx)
    admin, carol = actors[Role.ADMIN], actors[Role.CONTRIBUTOR]
    sources.add_source(ctx, admin, "crm", url=crm_url)
    users = sources._users

    def linked_meanwhile(session: Any, source_id: int) -> list[str]:
        found = users(session, source_id)
        if not found:  # the removal has checked: the link lands now
            _link(ctx, carol, "people", "crm")
        return found

    monkeypatch.setattr(sources, "_users", linked_meanwhile)
    with pytest.raises(ConflictError, match=r"'crm' is used by dataset\(s\) people"):
        sources.remove_source(ctx, admin, "crm")
    assert [s.name for s in sources.list_sources(ctx, admin)] == ["crm"]
    assert _dangling(ctx) == []
    assert sorted(linked.sample_link(ctx, "people", limit=5).column("id").to_pylist()) == [1, 2]


def test_removals_racing_links_never_leave_a_dataset_without_its_source(
    ctx: Context, crm_url: str
) -> None:
    actors = make_actors(ctx)
    admin, carol = actors[Role.ADMIN], actors[Role.CONTRIBUTOR]
    outcomes: dict[tuple[str, str], int] = {}

    def remove(source: str) -> None:
        sources.remove_source(ctx, admin, source)

    def link(dataset: str, source: str) -> None:
        _link(ctx, carol, dataset, source)

    for round_ in range(ROUNDS):
        source, dataset = f"src{round_}", f"lk{round_}"
        sources.add_source(ctx, admin, source, url=crm_url)
        barrier = threading.Barrier(2)
        result: dict[str, str] = {}
        threads = [
            threading.Thread(target=_run, args=(barrier, result, "remove", remove, source)),
            threading.Thread(target=_run, args=(barrier, result, "link", link, dataset, source)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        pair = (result.get("remove", "hung"), result.get("link", "hung"))
        outcomes[pair] = outcomes.get(pair, 0) + 1
        assert pair in {("ok", "refused"), ("refused", "ok")}, pair
        assert _dangling(ctx) == [], f"round {round_}: {pair}"
        if pair[1] == "ok":
            linked.sample_link(ctx, dataset, limit=1)  # readable through its source
    assert sum(outcomes.values()) == ROUNDS
