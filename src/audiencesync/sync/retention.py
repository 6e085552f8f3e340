"""Retention of personal data, and the report of what is held where (docs/privacy.md).

:func:`sweep` (the scheduler runs it hourly; ``audiencesync privacy sweep`` on demand)
drops reject samples from run records older than ``AUDIENCESYNC_REJECT_SAMPLE_RETENTION_DAYS``,
removes uploaded files no dataset reads any more once older than
``AUDIENCESYNC_UPLOAD_RETENTION_HOURS``, and removes superseded versions of imported
datasets (kept a few minutes for readers that resolved them), the scratch folders of
runs no longer under way and the staging of suppression-list uploads interrupted over an
hour ago. :func:`report` lists every
place audiencesync keeps personal data, with sizes and ages; never a value.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update

from audiencesync.control.context import Context
from audiencesync.control.models import Dataset, utcnow
from audiencesync.control.permissions import Actor
from audiencesync.control.privacy_models import Erasure, SuppressionList
from audiencesync.control.sync_models import Export, Run
from audiencesync.profiles import store
from audiencesync.sync import runs, suppression
from audiencesync.sync.privacy import require_admin
from audiencesync.sync.snapshot import Snapshot, export_dir

#: the scheduler sweeps at most this often.
SWEEP_EVERY = timedelta(hours=1)
_last_sweep: datetime | None = None


@dataclass
class SweepResult:
    #: runs whose reject samples were dropped.
    samples_dropped: int = 0
    #: upload folders removed.
    uploads_removed: int = 0
    #: superseded dataset version files removed.
    versions_removed: int = 0
    #: hash files of finished erasures folded into one per type (no hash is dropped).
    erasure_files_merged: int = 0
    #: scratch folders of runs no longer running (normalized identifiers) removed.
    scratch_removed: int = 0
    #: staging files of interrupted suppression-list uploads (raw values) removed.
    staging_removed: int = 0


#: staging of a suppression-list upload older than this is an interrupted one's.
STAGING_MAX_AGE = timedelta(hours=1)
ACTIVE = ("queued", "running")


def _scratch_folders(home: Path) -> list[Path]:
    """Every run's scratch folder: ``exports/<id>/audiences/<a>/runs/<run id>``."""
    return [p for p in (home / "exports").glob("*/audiences/*/runs/*") if p.is_dir()]


def staging_dir(home: Path) -> Path:
    return suppression.privacy_dir(home) / "staging"


def _sweep_scratch(ctx: Context) -> int:
    """Remove the scratch folders of runs that are not under way (killed runs leave
    normalized raw identifiers there). A folder's run row is committed before the folder
    is made, so a run whose row is not queued or running no longer uses its folder."""
    removed = 0
    for folder in _scratch_folders(ctx.home):
        if not folder.name.isdigit():
            continue
        with ctx.db.session() as session:
            status = session.scalar(select(Run.status).where(Run.id == int(folder.name)))
        if status in ACTIVE:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed


def _sweep_staging(home: Path, moment: datetime) -> int:
    """Remove staging left by suppression-list uploads interrupted over an hour ago."""
    folder = staging_dir(home)
    if not folder.is_dir():
        return 0
    cutoff = (moment - STAGING_MAX_AGE).timestamp()
    removed = 0
    for item in folder.iterdir():
        newest = max((_mtime(p) for p in [item, *_tree(item)]), default=float("inf"))
        if newest >= cutoff:
            continue
        if item.is_dir():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)
        removed += 1
    return removed


def sweep(ctx: Context, now: datetime | None = None) -> SweepResult:
    """Apply the retention settings once; what was removed."""
    moment = now or utcnow()
    result = SweepResult()
    runs.mark_interrupted(ctx)  # a killed run whose lease expired no longer uses its scratch
    cutoff = moment - timedelta(days=ctx.settings.reject_sample_retention_days)
    with ctx.db.session() as session:
        old = session.execute(
            select(Run.id, Run.reject_samples).where(
                Run.finished_at.is_not(None), Run.finished_at < cutoff
            )
        ).all()
        sampled = [run_id for run_id, samples in old if samples]
        for start in range(0, len(sampled), 500):
            chunk = sampled[start : start + 500]
            session.execute(update(Run).where(Run.id.in_(chunk)).values(reject_samples={}))
        result.samples_dropped = len(sampled)
        datasets = session.execute(
            select(Dataset.name, Dataset.source, Dataset.data_path).where(Dataset.kind == "file")
        ).all()
        finished = session.scalars(select(Erasure.id).where(Erasure.status == "succeeded")).all()
    result.erasure_files_merged = suppression.merge_erasure_files(ctx.home, finished)
    result.scratch_removed = _sweep_scratch(ctx)
    result.staging_removed = _sweep_staging(ctx.home, moment)
    uploads = (ctx.home / store.UPLOADS).resolve()
    used = set()
    for _, source, _ in datasets:
        path = Path(source or "")
        if path.is_absolute() and path.resolve().is_relative_to(uploads):
            used.add(path.resolve().parent)
    upload_cutoff = moment.timestamp() - ctx.settings.upload_retention_hours * 3600
    if uploads.is_dir():
        for folder in uploads.iterdir():
            if folder.resolve() in used or _mtime(folder) >= upload_cutoff:
                continue
            shutil.rmtree(folder, ignore_errors=True)
            result.uploads_removed += 1
    grace = moment.timestamp() - store.READER_GRACE_SECONDS
    for name, _, data_path in datasets:
        current = Path(data_path).name if data_path else ""
        for candidate in (ctx.home / "profiles" / name).glob("*.parquet"):
            if candidate.name != current and _mtime(candidate) < grace:
                candidate.unlink(missing_ok=True)
                result.versions_removed += 1
    return result


def sweep_if_due(ctx: Context, now: datetime) -> SweepResult | None:
    """:func:`sweep` when the last one in this process is older than ``SWEEP_EVERY``."""
    global _last_sweep
    if _last_sweep is not None and now - _last_sweep < SWEEP_EVERY:
        return None
    _last_sweep = now
    return sweep(ctx, now)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


@dataclass(frozen=True)
class HeldData:
    """One place audiencesync keeps personal data."""

    #: dataset, dataset_versions, snapshot, run_scratch, suppression_list,
    #: erased_identifiers, reject_samples, staging, uploads.
    category: str
    name: str
    #: where, relative to the home folder (or "control database").
    location: str
    #: what it holds, in words.
    holds: str
    #: rows, identifiers or samples (None: not counted).
    items: int | None
    bytes: int
    oldest: datetime | None
    newest: datetime | None


@dataclass
class PrivacyReport:
    generated_at: datetime
    reject_sample_retention_days: int
    upload_retention_hours: float
    entries: list[HeldData] = field(default_factory=list)


def _files(paths: Iterable[Path]) -> tuple[int, datetime | None, datetime | None]:
    size, times = 0, []
    for path in paths:
        try:
            info = path.stat()
        except FileNotFoundError:
            continue
        size += info.st_size
        times.append(info.st_mtime)
    if not times:
        return size, None, None
    return (
        size,
        datetime.fromtimestamp(min(times), UTC),
        datetime.fromtimestamp(max(times), UTC),
    )


def _tree(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []


def report(ctx: Context, actor: Actor) -> PrivacyReport:
    """Every place personal data is held, with sizes and ages (administrators)."""
    require_admin(actor)
    result = PrivacyReport(
        generated_at=utcnow(),
        reject_sample_retention_days=ctx.settings.reject_sample_retention_days,
        upload_retention_hours=ctx.settings.upload_retention_hours,
    )
    home = ctx.home
    with ctx.db.session() as session:
        datasets = session.scalars(select(Dataset).order_by(Dataset.name)).all()
        exports = session.execute(
            select(Export.id, Export.name, Export.audience_id).order_by(Export.name)
        ).all()
        lists = session.scalars(select(SuppressionList).order_by(SuppressionList.name)).all()
        sampled = session.execute(
            select(Run.id, Run.finished_at, Run.reject_samples).where(Run.finished_at.is_not(None))
        ).all()
        dataset_rows = [
            (d.name, d.kind, d.row_count, d.data_path, d.imported_at, d.source) for d in datasets
        ]
        list_rows = [(x.id, x.name, x.kind, x.size, x.created_at) for x in lists]
    for name, kind, rows, data_path, imported_at, _ in dataset_rows:
        if kind != "file":
            result.entries.append(
                HeldData(
                    "dataset",
                    name,
                    "linked table (not copied)",
                    "profiles, read where they live",
                    rows,
                    0,
                    None,
                    imported_at,
                )
            )
            continue
        folder = home / "profiles" / name
        current = home / data_path if data_path else None
        size, _, _ = _files([current] if current else [])
        result.entries.append(
            HeldData(
                "dataset",
                name,
                str(Path("profiles") / name),
                "imported profiles (all columns, raw values)",
                rows,
                size,
                imported_at,
                imported_at,
            )
        )
        older = [p for p in folder.glob("*.parquet") if current is None or p != current]
        if older:
            size, first, last = _files(older)
            result.entries.append(
                HeldData(
                    "dataset_versions",
                    name,
                    str(Path("profiles") / name),
                    "superseded versions, removed by the retention sweep",
                    len(older),
                    size,
                    first,
                    last,
                )
            )
    for export_id, name, audience_id in exports:
        root = export_dir(home, export_id)
        scratch = [p for p in root.glob("audiences/*/runs/*") if p.is_dir()]
        scratch_paths = [path for folder in scratch for path in _tree(folder)]
        if scratch_paths:
            size, first, last = _files(scratch_paths)
            result.entries.append(
                HeldData(
                    "run_scratch",
                    name,
                    str((root / "audiences").relative_to(home)) + "/*/runs/",
                    "normalized identifiers (raw emails, phones, ad ids) of runs; deleted "
                    "when a run ends, a killed run's by the retention sweep",
                    len(scratch),
                    size,
                    first,
                    last,
                )
            )
        inside = set(scratch_paths)
        paths = [p for p in _tree(root) if p not in inside]
        if not paths:
            continue
        held = None
        audience_root = root / "audiences" / audience_id
        if audience_root.is_dir():
            try:
                held = sum(Snapshot.of(ctx, export_id, audience_id).held().values())
            except Exception:  # noqa: BLE001 - a busy snapshot is reported uncounted
                held = None
        size, first, last = _files(paths)
        result.entries.append(
            HeldData(
                "snapshot",
                name,
                str(root.relative_to(home)),
                "SHA-256 hashes confirmed in the audience",
                held,
                size,
                first,
                last,
            )
        )
    for list_id, name, kind, size_rows, created_at in list_rows:
        size, _, last = _files(suppression.list_files(home, list_id))
        result.entries.append(
            HeldData(
                "suppression_list",
                name,
                str(suppression.list_dir(home, list_id).relative_to(home)),
                f"SHA-256 hashes of {kind} identifiers",
                size_rows,
                size,
                created_at,
                last,
            )
        )
    erased = suppression.erasure_files(home)
    if erased:
        size, first, last = _files(erased)
        result.entries.append(
            HeldData(
                "erased_identifiers",
                "erasures (global)",
                str(suppression.erasure_dir(home).relative_to(home)),
                "SHA-256 hashes of erased identifiers, never sent again",
                suppression.distinct_count(erased),
                size,
                first,
                last,
            )
        )
    with_samples = [(at, samples) for _, at, samples in sampled if samples]
    if with_samples:
        count = sum(len(rows) for _, samples in with_samples for rows in samples.values())
        times = [at for at, _ in with_samples]
        result.entries.append(
            HeldData(
                "reject_samples",
                f"{len(with_samples)} run(s)",
                "control database",
                "profile keys of rejected values (never the values)",
                count,
                sum(len(str(samples)) for _, samples in with_samples),
                min(times),
                max(times),
            )
        )
    staged = _tree(staging_dir(home))
    if staged:
        size, first, last = _files(staged)
        result.entries.append(
            HeldData(
                "staging",
                "suppression-list uploads",
                str(staging_dir(home).relative_to(home)),
                "suppression-list files being hashed (raw values); deleted when hashed, "
                "an interrupted upload's after an hour by the retention sweep",
                len(staged),
                size,
                first,
                last,
            )
        )
    uploads = _tree(home / store.UPLOADS)
    if uploads:
        size, first, last = _files(uploads)
        result.entries.append(
            HeldData(
                "uploads",
                "uploaded files",
                store.UPLOADS,
                "files uploaded for import (raw values)",
                len(uploads),
                size,
                first,
                last,
            )
        )
    return result
