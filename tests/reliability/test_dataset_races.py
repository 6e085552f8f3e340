"""Removing a dataset while it is read or refreshed (reviewer 13, finding 2).

A refresh racing a removal answered 500 (DuckDB's IO error on the scratch file the
removal deleted) or a misleading 400 ("could not be read as csv: IO Error"); a segment
created over a dataset being removed answered 500 (its Parquet file not found). Each is
now "dataset ... was removed" (404), and the dataset does not come back half-made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from audiencesync.control.context import Context
from audiencesync.control.models import Dataset, Role
from audiencesync.control.permissions import Actor
from audiencesync.errors import NotFoundError
from audiencesync.profiles import store
from audiencesync.segments import service as segments
from audiencesync.segments import source as segment_source
from audiencesync.segments.rules import parse_rules
from tests.conftest import make_actors

PEOPLE = "id,age\n1,30\n2,40\n3,50\n"


def _imported(ctx: Context, tmp_path: Path) -> Actor:
    carol = make_actors(ctx)[Role.CONTRIBUTOR]
    people = tmp_path / "people.csv"
    people.write_text(PEOPLE)
    store.import_file(ctx, carol, people, key="id", name="ds0")
    return carol


def _gone(ctx: Context) -> None:
    with ctx.db.session() as session:
        assert session.scalar(select(Dataset)) is None
    assert not list((ctx.home / "profiles").glob("ds0/*.parquet"))


def test_a_dataset_removed_while_its_refresh_reads_the_file_is_not_found(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    carol = _imported(ctx, tmp_path)
    prepare_in = store._prepare_in

    def removed_meanwhile(*args: Any) -> Any:
        store.remove(ctx, carol, "ds0")  # its folder, the refresh's scratch in it, go
        return prepare_in(*args)

    monkeypatch.setattr(store, "_prepare_in", removed_meanwhile)
    with pytest.raises(NotFoundError, match="dataset 'ds0' was removed"):
        store.refresh(ctx, carol, "ds0")
    _gone(ctx)


def test_a_dataset_removed_before_its_refresh_is_saved_does_not_come_back(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    carol = _imported(ctx, tmp_path)
    prepare = store._prepare

    def removed_after(*args: Any) -> Any:
        prepared = prepare(*args)
        store.remove(ctx, carol, "ds0")
        return prepared

    monkeypatch.setattr(store, "_prepare", removed_after)
    with pytest.raises(NotFoundError, match="dataset 'ds0' was removed"):
        store.refresh(ctx, carol, "ds0")
    _gone(ctx)


def test_a_segment_over_a_dataset_removed_while_it_is_opened_is_not_found(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    carol = _imported(ctx, tmp_path)
    parquet_key = store.parquet_key

    def removed_after_lookup(context: Context, name: str) -> str:
        key = parquet_key(context, name)
        store.remove(ctx, carol, "ds0")  # the file the reader looked up is deleted
        return key

    monkeypatch.setattr(segment_source.store, "parquet_key", removed_after_lookup)
    with pytest.raises(NotFoundError, match="dataset 'ds0' was removed"):
        segments.create_segment(
            ctx, carol, "adults", dataset="ds0",
            rules=parse_rules({"field": "age", "op": ">", "value": 1}),
        )  # fmt: skip
    _gone(ctx)
    assert segments.list_segments(ctx, carol) == []
