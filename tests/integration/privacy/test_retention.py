"""Retention: reject samples dropped after the configured days, unused uploads and
superseded dataset versions removed; the report counts what is held."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet
import pytest

from audiencesync.control.context import Context
from audiencesync.control.models import Role, utcnow
from audiencesync.control.permissions import Actor
from audiencesync.emulator.testing import EmulatorHandle
from audiencesync.errors import PermissionDeniedError
from audiencesync.profiles import store
from audiencesync.sync import exports, retention, runs, suppression
from audiencesync.sync.exports import ExportSpec
from audiencesync.types import IdentifierType
from tests.snap_helpers import connect, load_profiles

SQLITE_ONLY = pytest.mark.parametrize("database_url", [None], ids=["sqlite"])


@SQLITE_ONLY
def test_sweep_drops_old_reject_samples_uploads_and_versions(
    ctx: Context, actors: dict[Role, Actor], emulator: EmulatorHandle, tmp_path: Path
) -> None:
    admin = actors[Role.ADMIN]
    connect(ctx, admin, "Snap")
    load_profiles(ctx, admin, tmp_path)  # one profile holds "not-an-email": a reject sample
    audience = str(emulator.create_segment_directly("Customers")["id"])
    spec = ExportSpec(
        name="main", connection="Snap", segments=("everyone",), email_field="email",
        audience_id=audience,
    )  # fmt: skip
    exports.add_export(ctx, admin, spec)
    run = runs.run_now(ctx, admin, "main")
    assert run.reject_samples, "the run kept no reject sample: the sweep would prove nothing"
    # An upload no dataset reads, and one a dataset was imported from.
    unused = ctx.home / store.UPLOADS / "aaaa"
    unused.mkdir(parents=True)
    (unused / "old.csv").write_text("id,email\n1,x@example.com\n")
    kept = ctx.home / store.UPLOADS / "bbbb"
    kept.mkdir()
    (kept / "customers.csv").write_text("customer_id,email\n1,a@example.com\n")
    store.import_file(ctx, admin, kept / "customers.csv", key="customer_id", name="uploaded")
    store.refresh(ctx, admin, "customers")  # the first version is superseded
    old = time.time() - 2 * 86400
    for path in [unused, *(ctx.home / "profiles" / "customers").glob("*.parquet")]:
        os.utime(path, (old, old))
    # What a killed run leaves: normalized raw identifiers in its scratch folder; a queued
    # run's folder is kept. A killed suppression-list upload leaves its raw file staged.
    runs_dir = ctx.home / "exports" / "1" / "audiences" / audience / "runs"
    killed = runs_dir / str(run.id)
    killed.mkdir(parents=True)
    pa.parquet.write_table(pa.table({"v": ["left.behind@example.com"]}), killed / "current.parquet")
    waiting = runs_dir / str(runs.request_run(ctx, admin, "main"))
    waiting.mkdir()
    staged_old = suppression.privacy_dir(ctx.home) / "staging" / "old"
    staged_new = suppression.privacy_dir(ctx.home) / "staging" / "new"
    for folder in (staged_old, staged_new):
        folder.mkdir(parents=True)
        (folder / "upload.csv").write_text("secret.person@example.com\n")
    two_hours_ago = time.time() - 7200
    for path in (staged_old, staged_old / "upload.csv"):
        os.utime(path, (two_hours_ago, two_hours_ago))
    with pytest.raises(PermissionDeniedError):
        retention.report(ctx, actors[Role.CONTRIBUTOR])
    entries = retention.report(ctx, admin).entries
    before = {e.category for e in entries}
    assert {"reject_samples", "uploads", "dataset_versions", "run_scratch", "staging"} <= before
    (scratch,) = [e for e in entries if e.category == "run_scratch"]
    assert scratch.items == 2
    assert "raw" in scratch.holds
    (staging,) = [e for e in entries if e.category == "staging"]
    assert staging.items == 2
    assert "raw values" in staging.holds

    now = retention.sweep(ctx)
    assert (now.uploads_removed, now.versions_removed) == (1, 1)
    assert (now.scratch_removed, now.staging_removed) == (1, 1)
    assert not killed.exists()
    assert waiting.exists()
    assert not staged_old.exists()
    assert staged_new.exists()
    soon = retention.sweep(ctx, utcnow() + timedelta(days=29))
    assert soon.samples_dropped == 0
    assert not unused.exists()
    assert (kept / "customers.csv").exists()
    assert runs.get_run(ctx, admin, run.id).reject_samples
    current = ctx.storage.path(store.parquet_key(ctx, "customers"))
    assert current.exists()

    later = retention.sweep(ctx, utcnow() + timedelta(days=31))
    assert later.samples_dropped == 1
    assert runs.get_run(ctx, admin, run.id).reject_samples == {}
    # The figures stay: only the profile keys of the samples go.
    assert runs.get_run(ctx, admin, run.id).counts["rejected"] == run.counts["rejected"]
    after = {e.category for e in retention.report(ctx, admin).entries}
    assert "reject_samples" not in after
    assert "dataset_versions" not in after


def test_finished_erasures_are_folded_into_one_file_per_type_without_losing_a_hash(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    expected = set()
    for erasure_id in range(1, 41):
        hashes = [f"{erasure_id:064x}", f"{erasure_id % 5:064x}"]  # overlaps between files
        expected.update(hashes)
        target = suppression.erasure_dir(home) / f"{erasure_id}-email.parquet"
        suppression.write_hashes(target, [pa.array(hashes, pa.string())])
    # Erasure 40 is not finished: its file stays, so it can still be resumed.
    assert suppression.merge_erasure_files(home, range(1, 40)) == 39
    files = suppression.erasure_files(home, IdentifierType.EMAIL)
    assert len(files) == 2
    assert suppression.erasure_hash_files(home, 40) == {
        IdentifierType.EMAIL: suppression.erasure_dir(home) / "40-email.parquet"
    }
    assert suppression.distinct_count(files) == len(expected)
    assert suppression.merge_erasure_files(home, range(1, 40)) == 0
