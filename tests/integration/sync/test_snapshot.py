"""The confirmed snapshot: base file + journal replayed in order, compacted only when large."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pyarrow as pa

from audiencesync import duck
from audiencesync.sync.snapshot import ADD, COMPACT_FILES, REMOVE, Snapshot
from audiencesync.types import IdentifierType

EMAIL = IdentifierType.EMAIL


def h(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def hashes(*labels: str) -> pa.Array:
    return pa.array([h(label) for label in labels], pa.string())


def confirmed(snapshot: Snapshot, kind: IdentifierType = EMAIL) -> list[str]:
    query = snapshot.confirmed_sql(kind)
    if query is None:
        return []
    with duck.connect() as con:
        rows = con.execute(f"SELECT hash FROM ({query})").fetchall()
    values = [value for (value,) in rows]
    assert len(values) == len(set(values)), "each confirmed hash appears once"
    return sorted(values)


def expect(*labels: str) -> list[str]:
    return sorted(h(label) for label in labels)


def test_the_journal_replays_in_order_and_the_last_action_wins(tmp_path: Path) -> None:
    snapshot = Snapshot(tmp_path, 1, "42")
    snapshot.record(ADD, EMAIL, hashes(*(f"p{n}" for n in range(100))))
    snapshot.compact(EMAIL, force=True)
    snapshot.record(ADD, EMAIL, hashes("new"))
    snapshot.record(REMOVE, EMAIL, hashes("p1", "p2"))
    snapshot.record(ADD, EMAIL, hashes("p2"))  # removed, then added back
    snapshot.record(REMOVE, EMAIL, hashes("new"))  # added, then removed
    expected = expect(*(f"p{n}" for n in range(100) if n != 1))
    assert confirmed(snapshot) == expected
    # A new Snapshot (the next run) reads the same set and numbers after the journal.
    again = Snapshot(tmp_path, 1, "42")
    again.record(ADD, EMAIL, hashes("p1"))
    assert confirmed(again) == expect(*(f"p{n}" for n in range(100)))
    assert again.counts() == {"email": 100}


def test_a_small_journal_leaves_the_base_alone_a_large_one_is_folded(tmp_path: Path) -> None:
    snapshot = Snapshot(tmp_path, 1, "42")
    snapshot.record(ADD, EMAIL, hashes(*(f"p{n}" for n in range(100))))
    assert snapshot.compact(EMAIL)  # the first batch becomes the base
    base = snapshot.confirmed(EMAIL)
    before = base.stat().st_mtime_ns, base.stat().st_ino
    snapshot.record(REMOVE, EMAIL, hashes("p0"))
    snapshot.record(ADD, EMAIL, hashes("a", "b"))
    assert not snapshot.compact(EMAIL)  # 3 journaled rows against 100: not worth a rewrite
    assert (base.stat().st_mtime_ns, base.stat().st_ino) == before
    snapshot.record(ADD, EMAIL, hashes(*(f"q{n}" for n in range(30))))
    assert snapshot.compact(EMAIL)  # 33 rows: past the share
    assert list(snapshot.journal.glob("*.parquet")) == []
    assert confirmed(snapshot) == expect(
        *(f"p{n}" for n in range(1, 100)), "a", "b", *(f"q{n}" for n in range(30))
    )


def test_many_journal_files_are_folded_whatever_their_size(tmp_path: Path) -> None:
    snapshot = Snapshot(tmp_path, 1, "42")
    snapshot.record(ADD, EMAIL, hashes(*(f"p{n}" for n in range(10_000))))
    snapshot.compact(EMAIL)
    for n in range(COMPACT_FILES):
        snapshot.record(ADD, EMAIL, hashes(f"x{n}"))
    assert snapshot.compact(EMAIL)
    assert len(confirmed(snapshot)) == 10_000 + COMPACT_FILES


def test_a_kill_after_the_new_base_and_before_the_journal_is_deleted_changes_nothing(
    tmp_path: Path,
) -> None:
    snapshot = Snapshot(tmp_path, 1, "42")
    snapshot.record(ADD, EMAIL, hashes(*(f"p{n}" for n in range(10))))
    snapshot.compact(EMAIL)
    snapshot.record(REMOVE, EMAIL, hashes("p3"))
    snapshot.record(ADD, EMAIL, hashes("p3", "z"))
    snapshot.record(REMOVE, EMAIL, hashes("p4"))
    expected = confirmed(snapshot)
    kept = tmp_path / "kept"
    shutil.copytree(snapshot.journal, kept)
    snapshot.compact(EMAIL, force=True)
    # As if the process died before deleting the journal: the files are back.
    for path in kept.iterdir():
        shutil.copy(path, snapshot.journal / path.name)
    assert confirmed(Snapshot(tmp_path, 1, "42")) == expected
    assert expected == expect(*(f"p{n}" for n in range(10) if n != 4), "z")


def test_types_no_longer_confirmed_and_reset(tmp_path: Path) -> None:
    snapshot = Snapshot(tmp_path, 1, "42")
    snapshot.record(ADD, IdentifierType.PHONE, hashes("1"))
    snapshot.record(REMOVE, IdentifierType.PHONE, hashes("1"))
    assert snapshot.types() == {IdentifierType.PHONE}
    assert confirmed(snapshot, IdentifierType.PHONE) == []
    assert snapshot.counts() == {}
    snapshot.reset()
    assert snapshot.types() == set()
