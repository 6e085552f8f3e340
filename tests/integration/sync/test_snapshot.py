"""The confirmed snapshot: base file + journal replayed in order, compacted only when large.

Every test runs on a local folder and on a bucket of a real S3-compatible server.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from audiencesync import duck
from audiencesync.storage import Storage, open_storage
from audiencesync.sync.snapshot import ADD, COMPACT_FILES, REMOVE, Snapshot, SnapshotBusyError
from audiencesync.types import IdentifierType

EMAIL = IdentifierType.EMAIL


def h(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def hashes(*labels: str) -> pa.Array:
    return pa.array([h(label) for label in labels], pa.string())


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """The shared storage: a local folder, or a fresh prefix of the test bucket."""
    if request.param == "local":
        return open_storage(None, tmp_path)
    fields: dict[str, str] = request.getfixturevalue("s3_settings")
    return open_storage(fields["storage_url"], tmp_path, endpoint=fields["storage_endpoint_url"])


def opened(storage: Storage, tmp_path: Path) -> Snapshot:
    return Snapshot(storage, 1, "42", tmp_path / "work")


def journal_names(snapshot: Snapshot) -> list[str]:
    return sorted(
        e.name for e in snapshot.storage.listing(snapshot.journal) if e.name.endswith(".parquet")
    )


def confirmed(snapshot: Snapshot, kind: IdentifierType = EMAIL) -> list[str]:
    with duck.connect() as con:
        query = snapshot.confirmed_sql(kind, con)
        if query is None:
            return []
        rows = con.execute(f"SELECT hash FROM ({query})").fetchall()
    values = [value for (value,) in rows]
    assert len(values) == len(set(values)), "each confirmed hash appears once"
    return sorted(values)


def expect(*labels: str) -> list[str]:
    return sorted(h(label) for label in labels)


def test_the_journal_replays_in_order_and_the_last_action_wins(
    storage: Storage, tmp_path: Path
) -> None:
    snapshot = opened(storage, tmp_path)
    snapshot.record(ADD, EMAIL, hashes(*(f"p{n}" for n in range(100))))
    snapshot.compact(EMAIL, force=True)
    snapshot.record(ADD, EMAIL, hashes("new"))
    snapshot.record(REMOVE, EMAIL, hashes("p1", "p2"))
    snapshot.record(ADD, EMAIL, hashes("p2"))  # removed, then added back
    snapshot.record(REMOVE, EMAIL, hashes("new"))  # added, then removed
    expected = expect(*(f"p{n}" for n in range(100) if n != 1))
    assert confirmed(snapshot) == expected
    # A new Snapshot (the next run) reads the same set and numbers after the journal.
    again = opened(storage, tmp_path)
    again.record(ADD, EMAIL, hashes("p1"))
    assert confirmed(again) == expect(*(f"p{n}" for n in range(100)))
    assert again.counts() == {"email": 100}


def test_a_small_journal_leaves_the_base_alone_a_large_one_is_folded(
    storage: Storage, tmp_path: Path
) -> None:
    snapshot = opened(storage, tmp_path)
    snapshot.record(ADD, EMAIL, hashes(*(f"p{n}" for n in range(100))))
    assert snapshot.compact(EMAIL)  # the first batch becomes the base
    base = snapshot.confirmed(EMAIL)

    def version() -> str:
        return next(e.version for e in storage.listing(snapshot.root) if e.key == base)

    before = version()
    snapshot.record(REMOVE, EMAIL, hashes("p0"))
    snapshot.record(ADD, EMAIL, hashes("a", "b"))
    assert not snapshot.compact(EMAIL)  # 3 journaled rows against 100: not worth a rewrite
    assert version() == before
    snapshot.record(ADD, EMAIL, hashes(*(f"q{n}" for n in range(30))))
    assert snapshot.compact(EMAIL)  # 33 rows: past the share
    assert journal_names(snapshot) == []
    assert confirmed(snapshot) == expect(
        *(f"p{n}" for n in range(1, 100)), "a", "b", *(f"q{n}" for n in range(30))
    )


def test_many_journal_files_are_folded_whatever_their_size(
    storage: Storage, tmp_path: Path
) -> None:
    snapshot = opened(storage, tmp_path)
    snapshot.record(ADD, EMAIL, hashes(*(f"p{n}" for n in range(10_000))))
    snapshot.compact(EMAIL)
    for n in range(COMPACT_FILES):
        snapshot.record(ADD, EMAIL, hashes(f"x{n}"))
    assert snapshot.compact(EMAIL)
    assert len(confirmed(snapshot)) == 10_000 + COMPACT_FILES


def test_a_kill_after_the_new_base_and_before_the_journal_is_deleted_changes_nothing(
    storage: Storage, tmp_path: Path
) -> None:
    snapshot = opened(storage, tmp_path)
    snapshot.record(ADD, EMAIL, hashes(*(f"p{n}" for n in range(10))))
    snapshot.compact(EMAIL)
    snapshot.record(REMOVE, EMAIL, hashes("p3"))
    snapshot.record(ADD, EMAIL, hashes("p3", "z"))
    snapshot.record(REMOVE, EMAIL, hashes("p4"))
    expected = confirmed(snapshot)
    kept = {
        name: storage.read_bytes(f"{snapshot.journal}/{name}") for name in journal_names(snapshot)
    }
    snapshot.compact(EMAIL, force=True)
    assert journal_names(snapshot) == []
    # As if the process died before deleting the journal: the files are back.
    for name, data in kept.items():
        storage.write_bytes(f"{snapshot.journal}/{name}", data)
    assert confirmed(opened(storage, tmp_path)) == expected
    assert expected == expect(*(f"p{n}" for n in range(10) if n != 4), "z")


def test_types_no_longer_confirmed_and_reset(storage: Storage, tmp_path: Path) -> None:
    snapshot = opened(storage, tmp_path)
    snapshot.record(ADD, IdentifierType.PHONE, hashes("1"))
    snapshot.record(REMOVE, IdentifierType.PHONE, hashes("1"))
    assert snapshot.types() == {IdentifierType.PHONE}
    assert confirmed(snapshot, IdentifierType.PHONE) == []
    assert snapshot.counts() == {}
    snapshot.reset()
    assert snapshot.types() == set()


def test_held_counts_distinct_confirmed_hashes_like_a_full_count(
    storage: Storage, tmp_path: Path
) -> None:
    snapshot = opened(storage, tmp_path)
    # Duplicates in the base: a --full re-send before any base existed, then a first load.
    snapshot.record(ADD, EMAIL, hashes("a", "b", "c"))
    snapshot.record(ADD, EMAIL, hashes("b", "c", "d"))
    snapshot.record(ADD, IdentifierType.PHONE, hashes("p"))
    snapshot.compact_all(force=True)
    assert snapshot.held() == snapshot.counts() == {"email": 4, "phone": 1}
    # The journal's effect on the cached base count: new adds, removals of base hashes,
    # a removal of something never confirmed, and a re-add of an existing hash.
    snapshot.record(ADD, EMAIL, hashes("e", "a"))
    snapshot.record(REMOVE, EMAIL, hashes("b", "zz"))
    snapshot.record(REMOVE, IdentifierType.PHONE, hashes("p"))
    assert snapshot.held() == snapshot.counts() == {"email": 4}  # c, d, e, a
    # A new base (compaction) is counted afresh, not from the cached figure of the old one.
    snapshot.compact_all(force=True)
    snapshot.record(ADD, EMAIL, hashes("f"))
    assert snapshot.held() == snapshot.counts() == {"email": 5}
    snapshot.reset()
    assert snapshot.held() == {}


def test_held_taken_while_a_run_journals_and_compacts_is_counted_again_not_wrong(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = opened(storage, tmp_path)
    snapshot.record(ADD, EMAIL, hashes(*"abc"))
    snapshot.compact_all(force=True)
    snapshot.record(ADD, EMAIL, hashes("d"))
    real = Snapshot._held_once
    changes = iter(["journal", "compact"])

    def with_a_run_meanwhile(self: Snapshot) -> dict[str, int]:
        change = next(changes, None)
        if change == "journal":  # a batch acknowledged after the files were listed
            counted = real(self)
            opened(storage, tmp_path).record(ADD, EMAIL, hashes("e"))
            return counted
        if change == "compact":  # the journal folded (its files deleted) mid-query
            opened(storage, tmp_path).compact_all(force=True)
            raise duckdb.IOException('IO Error: Cannot open file "journal/...parquet"')
        return real(self)

    monkeypatch.setattr(Snapshot, "_held_once", with_a_run_meanwhile)
    assert snapshot.held() == snapshot.counts() == {"email": 5}


def test_held_of_a_snapshot_that_never_settles_says_a_run_is_under_way(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = opened(storage, tmp_path)
    snapshot.record(ADD, EMAIL, hashes("a"))
    real = Snapshot._held_once
    added = iter(range(100))

    def always_changing(self: Snapshot) -> dict[str, int]:
        counted = real(self)
        opened(storage, tmp_path).record(ADD, EMAIL, hashes(f"x{next(added)}"))
        return counted

    monkeypatch.setattr(Snapshot, "_held_once", always_changing)
    with pytest.raises(SnapshotBusyError, match="a run is under way"):
        snapshot.held()


def test_held_of_an_unreadable_base_is_not_retried_forever(
    storage: Storage, tmp_path: Path
) -> None:
    snapshot = opened(storage, tmp_path)
    snapshot.record(ADD, EMAIL, hashes("a"))
    snapshot.compact_all(force=True)
    storage.write_bytes(snapshot.confirmed(EMAIL), b"not parquet")
    with pytest.raises((duckdb.Error, pa.ArrowInvalid)):
        snapshot.held()
