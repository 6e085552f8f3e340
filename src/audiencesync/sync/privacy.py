"""Privacy services: suppression lists and erasures (docs/privacy.md).

Administrators only. No function here returns, logs or stores a raw identifier; a
suppression list's hashes stay in its Parquet files (``sync.suppression``) and are never
returned either: a list is shown by its name, type, size and the exports it applies to.
"""

from __future__ import annotations

import csv
import logging
import re
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from audiencesync.control import audit
from audiencesync.control.context import Context
from audiencesync.control.models import utcnow
from audiencesync.control.permissions import Action, Actor, require
from audiencesync.control.privacy_models import Erasure, SuppressionList, SuppressionListExport
from audiencesync.control.sync_models import Connection, Export, Run
from audiencesync.errors import (
    ActiveRunError,
    AudiencesyncError,
    ConflictError,
    Fix,
    NotFoundError,
    UserInputError,
    about,
)
from audiencesync.identifiers import Normalized, hash_batch, normalize, parse_kind
from audiencesync.identifiers.model import RejectReason
from audiencesync.sync import erasing, runs, suppression
from audiencesync.sync.destinations import NEEDS_REAUTH
from audiencesync.sync.snapshot import Snapshot, export_key
from audiencesync.types import IdentifierType

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$")
_HEX64 = r"^[0-9a-f]{64}$"
#: values hashed per step while a list is read.
READ_ROWS = 100_000
#: identifiers one erasure may name, per type.
MAX_ERASURE_IDENTIFIERS = 100
NOT_A_HASH = "not_a_sha256_hash"


def require_admin(actor: Actor) -> None:
    """PermissionDeniedError unless ``actor`` may manage privacy (administrators)."""
    require(actor, Action.MANAGE_PRIVACY)


# ---------------------------------------------------------------- suppression lists


@dataclass(frozen=True)
class SuppressionListView:
    name: str
    kind: str
    all_exports: bool
    exports: tuple[str, ...]
    origin: str
    hashed_input: bool
    #: distinct identifiers (hashes) in the list.
    size: int
    #: values of the input that were not usable, by reason (never the values).
    rejected: dict[str, int]
    created_by: str
    created_at: datetime
    updated_at: datetime


def _list_view(session: Session, row: SuppressionList) -> SuppressionListView:
    names = session.scalars(
        select(Export.name)
        .join(SuppressionListExport, SuppressionListExport.export_id == Export.id)
        .where(SuppressionListExport.list_id == row.id)
        .order_by(Export.name)
    ).all()
    return SuppressionListView(
        name=row.name,
        kind=row.kind,
        all_exports=row.all_exports,
        exports=tuple(names),
        origin=row.origin,
        hashed_input=row.hashed_input,
        size=row.size,
        rejected={str(k): int(v) for k, v in (row.rejected or {}).items()},
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _check_list_name(name: str) -> str:
    cleaned = name.strip()
    if not _NAME.match(cleaned):
        raise UserInputError(
            f"{name!r} is not a valid suppression list name: use letters, digits, spaces, '.', "
            "'_' or '-', at most 100 characters.",
            field="name",
        )
    return cleaned


def _list_row(session: Session, name: str) -> SuppressionList:
    row = session.scalar(select(SuppressionList).where(SuppressionList.name == name))
    if row is None:
        raise NotFoundError(
            f"there is no suppression list named {name!r}.", fix=Fix("list", "privacy suppress")
        )
    return row


def _export_ids(session: Session, names: Sequence[str]) -> list[int]:
    ids = []
    for name in dict.fromkeys(n.strip() for n in names if n.strip()):
        found = session.scalar(select(Export.id).where(Export.name == name))
        if found is None:
            raise NotFoundError(f"there is no export named {name!r}.", fix=Fix("list", "exports"))
        ids.append(found)
    return ids


def _hash_values(
    kind: IdentifierType, values: pa.Array, *, hashed: bool, default_country: str | None
) -> tuple[pa.Array, dict[str, int]]:
    """The accepted hashes of ``values`` and the rejects by reason."""
    if hashed:
        text = pc.utf8_lower(pc.utf8_trim_whitespace(values.cast(pa.string())))
        valid = pc.fill_null(pc.match_substring_regex(text, _HEX64), False)
        empty = pc.fill_null(pc.equal(text, ""), True)
        rejected: dict[str, int] = {}
        blanks = int(pc.sum(pc.cast(empty, pa.int64())).as_py() or 0)
        bad = len(values) - blanks - int(pc.sum(pc.cast(valid, pa.int64())).as_py() or 0)
        if blanks:
            rejected[RejectReason.EMPTY.value] = blanks
        if bad:
            rejected[NOT_A_HASH] = bad
        return text.filter(valid), rejected
    result = hash_batch(kind, values, default_country=default_country, raw=True)
    return result.hashes.drop_null(), {str(r): int(n) for r, n in result.rejected.items()}


def _file_values(path: Path, column: str | None, limit_bytes: int) -> Iterator[pa.Array]:
    """The values of a list file in steps: Parquet (a column), or CSV / text (a column
    named in its first line, else the first column, one value a line)."""
    if not path.exists() or path.is_dir():
        raise UserInputError(
            f"{path} is not a file: give the path of the list's file.", field="list_source"
        )
    size = path.stat().st_size
    if size > limit_bytes:
        raise UserInputError(
            f"{path.name} is {size:,} bytes, more than the {limit_bytes:,} bytes a list file "
            "may have (AUDIENCESYNC_MAX_UPLOAD_BYTES): split it, or raise the setting.",
            field="list_source",
        )
    if path.suffix.lower() == ".parquet":
        try:
            reader = pq.ParquetFile(path)
        except Exception:  # noqa: BLE001 - any unreadable file gets one sentence
            raise UserInputError(
                f"{path.name} is not a readable Parquet file: export the list again.",
                field="list_source",
            ) from None
        names = reader.schema_arrow.names
        wanted = column or names[0]
        if wanted not in names:
            raise UserInputError(
                f"{path.name} has no column {wanted!r}: its columns are {', '.join(names[:8])}.",
                field="column",
            )
        for batch in reader.iter_batches(batch_size=READ_ROWS, columns=[wanted]):
            yield batch.column(0).cast(pa.string())
        return
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        rows = csv.reader(handle)
        index = 0
        if column is not None:
            header = next(rows, [])
            stripped = [h.strip() for h in header]
            if column not in stripped:
                raise UserInputError(
                    f"the first line of {path.name} names no column {column!r}: name the "
                    "column that holds the identifiers, or none for a list of one value a line.",
                    field="column",
                )
            index = stripped.index(column)
        chunk: list[str | None] = []
        for row in rows:
            chunk.append(row[index] if index < len(row) else None)
            if len(chunk) >= READ_ROWS:
                yield pa.array(chunk, pa.string())
                chunk = []
        if chunk:
            yield pa.array(chunk, pa.string())


def _dataset_values(ctx: Context, dataset: str, column: str) -> Iterator[pa.Array]:
    from audiencesync.segments.source import open_source

    with open_source(ctx, dataset) as source:
        columns = list(source.table.columns)
        if column not in columns:
            raise UserInputError(
                f"dataset {dataset!r} has no column {column!r}.",
                field="column",
                fix=Fix("schema", dataset),
            )
        reader = source.table.select(column).to_pyarrow_batches(chunk_size=READ_ROWS)
        while True:
            # As segments.membership reads members: DuckDB flags the streaming call
            # Ibis uses as deprecated, which fails when warnings are errors.
            with warnings.catch_warnings():
                warnings.filterwarnings(
                    "ignore", message=r"fetch_\w+\(\) is deprecated", category=DeprecationWarning
                )
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
            yield batch.column(0).cast(pa.string())


def create_list(
    ctx: Context,
    actor: Actor,
    name: str,
    *,
    kind: str,
    file: Path | None = None,
    column: str | None = None,
    dataset: str | None = None,
    hashed: bool = False,
    exports: Sequence[str] = (),
    all_exports: bool = False,
    default_country: str | None = None,
    origin: str | None = None,
) -> SuppressionListView:
    """Create a suppression list from a file or a dataset column; stored hashed only.

    ``hashed``: the values are SHA-256 hashes already (64 hex characters; anything else
    is rejected). Applies to every export (``all_exports``) or to ``exports``.
    """
    require_admin(actor)
    name = _check_list_name(name)
    with about("identifier_type"):
        identifier_type = parse_kind(kind)
    if all_exports == bool(exports):
        raise UserInputError(
            "say which exports the list applies to: every export, or some named ones "
            "(one of the two).",
            field="list_exports",
        )
    if (file is None) == (dataset is None):
        raise UserInputError(
            "give the list's values as a file or as a dataset column, one of the two.",
            field="list_source",
        )
    if dataset is not None and not column:
        raise UserInputError(
            "a list from a dataset needs the column holding the identifiers.", field="column"
        )
    with ctx.db.session() as session:
        if session.scalar(select(SuppressionList.id).where(SuppressionList.name == name)):
            raise ConflictError(
                f"a suppression list named {name!r} already exists: choose another.",
                field="name",
            )
        with about("list_exports"):
            export_ids = _export_ids(session, exports)
    values = (
        _file_values(file, column, ctx.settings.max_upload_bytes)
        if file is not None
        else _dataset_values(ctx, str(dataset), str(column))
    )
    described = origin or (
        f"file {file.name}" if file is not None else f"dataset {dataset} column {column}"
    )
    rejected: dict[str, int] = {}
    staging = suppression.privacy_dir(ctx.home) / "staging" / f"{uuid.uuid4().hex}.parquet"

    def accepted() -> Iterator[pa.Array]:
        for chunk in values:
            hashes, reasons = _hash_values(
                identifier_type, chunk, hashed=hashed, default_country=default_country
            )
            for reason, number in reasons.items():
                rejected[reason] = rejected.get(reason, 0) + number
            yield hashes

    try:
        suppression.write_hashes(staging, accepted())
        size = suppression.distinct_count([staging])
        if size == 0:
            raise UserInputError(
                f"no usable {identifier_type.value} was found in the {described}: check the "
                "identifier type, the column, and whether the values are already hashed.",
                field="identifier_type",
            )
        with ctx.db.session() as session:
            if session.scalar(select(SuppressionList.id).where(SuppressionList.name == name)):
                raise ConflictError(
                    f"a suppression list named {name!r} already exists: choose another.",
                    field="name",
                )
            moment = utcnow()
            row = SuppressionList(
                name=name, kind=identifier_type.value, all_exports=all_exports, system=False,
                origin=described, hashed_input=hashed, size=size, rejected=rejected,
                created_by=actor.name, created_at=moment, updated_at=moment,
            )  # fmt: skip
            session.add(row)
            session.flush()
            for export_id in export_ids:
                session.add(SuppressionListExport(list_id=row.id, export_id=export_id))
            target = suppression.list_dir(ctx.home, row.id) / f"{uuid.uuid4().hex}.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            staging.replace(target)
            audit.record(
                session, actor, "privacy.suppress.create", f"suppression_list:{name}",
                after={"type": row.kind, "size": size, "all_exports": all_exports,
                       "exports": list(exports), "origin": described},
            )  # fmt: skip
            session.flush()
            return _list_view(session, row)
    finally:
        staging.unlink(missing_ok=True)


def create_list_from_upload(
    ctx: Context,
    actor: Actor,
    name: str,
    stream: BinaryIO,
    filename: str,
    **options: Any,
) -> SuppressionListView:
    """:func:`create_list` from an uploaded file (API, web page): the file is kept only
    while it is hashed, in ``<home>/privacy/staging``, then deleted."""
    require_admin(actor)
    folder = suppression.privacy_dir(ctx.home) / "staging" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    suffix = ".parquet" if filename.lower().endswith(".parquet") else ".csv"
    target = folder / f"upload{suffix}"
    limit = ctx.settings.max_upload_bytes
    try:
        with target.open("wb") as handle:
            written = 0
            while chunk := stream.read(1 << 20):
                written += len(chunk)
                if written > limit:
                    raise UserInputError(
                        f"the file is larger than the {limit:,} bytes a list file may have "
                        "(AUDIENCESYNC_MAX_UPLOAD_BYTES): split it, or raise the setting.",
                        field="list_source",
                    )
                handle.write(chunk)
        shown = Path(filename or "upload").name
        return create_list(
            ctx, actor, name, file=target, origin=f"uploaded file {shown}", **options
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def list_lists(ctx: Context, actor: Actor) -> list[SuppressionListView]:
    require_admin(actor)
    with ctx.db.session() as session:
        rows = session.scalars(select(SuppressionList).order_by(SuppressionList.name)).all()
        return [_list_view(session, row) for row in rows]


def get_list(ctx: Context, actor: Actor, name: str) -> SuppressionListView:
    require_admin(actor)
    with ctx.db.session() as session:
        return _list_view(session, _list_row(session, name))


def remove_list(ctx: Context, actor: Actor, name: str) -> None:
    """Forget a list (its hashes are deleted); later runs may send its identifiers again."""
    require_admin(actor)
    with ctx.db.session() as session:
        row = _list_row(session, name)
        list_id = row.id
        audit.record(
            session, actor, "privacy.suppress.remove", f"suppression_list:{name}",
            before={"type": row.kind, "size": row.size},
        )  # fmt: skip
        session.delete(row)
    suppression.remove_list_files(ctx.home, list_id)


def erased_summary(ctx: Context) -> dict[str, int]:
    """Distinct erased identifiers held in the global list, by type."""
    return {
        kind.value: number
        for kind in IdentifierType
        if (number := suppression.distinct_count(suppression.erasure_files(ctx.home, kind)))
    }


# ---------------------------------------------------------------- erasure


@dataclass(frozen=True)
class ErasureView:
    id: int
    requested_by: str
    requested_at: datetime
    finished_at: datetime | None
    #: recording, running, succeeded, partially_succeeded, failed (killed before its
    #: identifiers were recorded: nothing sent, nothing kept; erase again).
    status: str
    #: identifiers given, by type (counts only).
    identifiers: dict[str, int]
    #: per export: runs, status (done / pending), removed by type, message.
    exports: dict[str, Any]


def _erasure_view(row: Erasure) -> ErasureView:
    return ErasureView(
        id=row.id,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        finished_at=row.finished_at,
        status=row.status,
        identifiers={str(k): int(v) for k, v in (row.identifiers or {}).items()},
        exports=dict(row.exports or {}),
    )


_ORDINAL = {1: "first", 2: "second", 3: "third"}


def hash_identifiers(
    emails: Sequence[str],
    phones: Sequence[str],
    maids: Sequence[str],
    default_country: str | None,
) -> dict[IdentifierType, list[str]]:
    """The hashes of the given identifiers, normalized as exports do; a UserInputError
    naming the position (never the value) of one that is not usable."""
    given = {
        IdentifierType.EMAIL: emails,
        IdentifierType.PHONE: phones,
        IdentifierType.MAID: maids,
    }
    result: dict[IdentifierType, list[str]] = {}
    for kind, values in given.items():
        if len(values) > MAX_ERASURE_IDENTIFIERS:
            raise UserInputError(
                f"an erasure names at most {MAX_ERASURE_IDENTIFIERS} identifiers of each type "
                f"({len(values)} {kind.value}s given): split it, or use a suppression list.",
                field=f"{kind.value}s",
            )
        for position, value in enumerate(values, 1):
            outcome = normalize(kind, value, default_country=default_country)
            if not isinstance(outcome, Normalized):
                place = _ORDINAL.get(position, f"number {position}")
                hint = (
                    " (for a phone without a country code, give the default country of phones)"
                    if kind is IdentifierType.PHONE
                    else ""
                )
                raise UserInputError(
                    f"the {place} {kind.value} given is not a usable {kind.value} "
                    f"({outcome.reason.value}){hint}: check it and run the erasure again; "
                    "nothing was erased.",
                    field=f"{kind.value}s",
                )
            result.setdefault(kind, [])
            if outcome.hash not in result[kind]:
                result[kind].append(outcome.hash)
    if not result:
        raise UserInputError(
            "name the person to erase: an email, a phone or a mobile ad id (each may be "
            "given more than once).",
            field="person",
        )
    return result


ExportCallback = Callable[[str], None]


def erase(
    ctx: Context,
    actor: Actor,
    *,
    emails: Sequence[str] = (),
    phones: Sequence[str] = (),
    maids: Sequence[str] = (),
    default_country: str | None = None,
    after_export: ExportCallback | None = None,
) -> ErasureView:
    """Erase a person from every audience and keep them out; the erasure's outcome.

    The identifiers are hashed as exports hash them, the hashes are added to the global
    list of erased identifiers (so no later run, ``--full`` included, sends them again),
    then every export whose confirmed snapshot holds one of them runs an ``erasure`` run
    that removes them at Snapchat. The raw values are not kept anywhere; the audit log
    records who erased how many identifiers from how many exports.
    """
    require_admin(actor)
    if default_country is not None:
        default_country = default_country.strip().upper()
    with about("default_country"):  # the checks of each value name their own field
        hashes = hash_identifiers(emails, phones, maids, default_country)
    counts = {kind.value: len(found) for kind, found in hashes.items()}
    with ctx.db.session() as session:
        row = Erasure(
            requested_by=actor.name, requested_at=utcnow(), status="recording",
            identifiers=counts, exports={}, lease_until=_lease_end(ctx),
        )  # fmt: skip
        session.add(row)
        session.flush()
        erasure_id = row.id
        audit.record(
            session, actor, "privacy.erase", f"erasure:{erasure_id}",
            after={"identifiers": sum(counts.values()), "by_type": counts},
        )  # fmt: skip
    for kind, found in hashes.items():
        target = suppression.erasure_dir(ctx.home) / f"{erasure_id}-{kind.value}.parquet"
        suppression.write_hashes(target, [pa.array(found, pa.string())])
    with ctx.db.session() as session:
        stored = session.get(Erasure, erasure_id)
        assert stored is not None
        stored.status = "running"
    log.info(
        "erasure %d: %d identifier(s) added to the erased list", erasure_id, sum(counts.values())
    )
    return _process(ctx, actor, erasure_id, after_export)


def resume_erasure(
    ctx: Context, actor: Actor, erasure_id: int, *, after_export: ExportCallback | None = None
) -> ErasureView:
    """Finish an erasure that was interrupted or left exports pending: each export
    removes what it still holds of the erasure's identifiers."""
    require_admin(actor)
    with ctx.db.session() as session:
        row = session.get(Erasure, erasure_id)
        if row is None:
            raise NotFoundError(
                f"there is no erasure {erasure_id}.", fix=Fix("list", "privacy erasures")
            )
        if row.status == "succeeded":
            raise ConflictError(
                f"erasure {erasure_id} has finished: every export removed its identifiers, "
                "nothing is left to resume."
            )
        abandoned = row.status == "recording" and (
            row.lease_until is None or _aware(row.lease_until) < utcnow()
        )
    if not suppression.erasure_hash_files(ctx.home, erasure_id):
        if abandoned:
            # Killed before its hashes were written: nothing was sent, nothing kept.
            with ctx.db.session() as session:
                session.execute(
                    update(Erasure)
                    .where(Erasure.id == erasure_id, Erasure.status == "recording")
                    .values(status="failed", finished_at=utcnow(), lease_until=None)
                )
        raise ConflictError(
            f"erasure {erasure_id} was interrupted before its identifiers were recorded, "
            "so nothing of it was sent.",
            fix=Fix("erase_again"),
        )
    moment = utcnow()
    with ctx.db.session() as session:
        taken = session.execute(
            update(Erasure)
            .where(
                Erasure.id == erasure_id,
                or_(Erasure.lease_until.is_(None), Erasure.lease_until < moment),
            )
            .values(status="running", finished_at=None, lease_until=_lease_end(ctx))
        )
        if getattr(taken, "rowcount", 0) != 1:
            raise ConflictError(
                f"erasure {erasure_id} is under way in another process: wait for it.",
                fix=Fix("show_erasure", str(erasure_id)),
            )
    return _process(ctx, actor, erasure_id, after_export)


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive UTC datetimes."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _lease_end(ctx: Context) -> datetime:
    return utcnow() + timedelta(seconds=ctx.settings.run_lease_seconds)


def resume_unfinished(ctx: Context, actor: Actor) -> list[ErasureView]:
    """Resume every erasure left unfinished that no process is working on (the
    scheduler does this hourly); the erasures resumed."""
    resumed = []
    for erasure_id in unfinished_erasures(ctx):
        try:
            resumed.append(resume_erasure(ctx, actor, erasure_id))
        except ConflictError:
            continue  # under way elsewhere, or never recorded: nothing to resume here
        except AudiencesyncError as error:
            log.warning("erasure %d was not resumed: %s", erasure_id, error.message)
    return resumed


def _pending(message: str, previous: dict[str, Any], fix: Fix | None = None) -> dict[str, Any]:
    """An export the erasure has not finished: the reason, and the action that helps as
    data (``fix``: kind and target) which each interface words its own way."""
    result = {**previous, "status": "pending", "message": message}
    result.pop("fix", None)
    if fix is not None:
        result["fix"] = {"kind": fix.kind, "target": fix.target}
    return result


def _process(
    ctx: Context, actor: Actor, erasure_id: int, after_export: ExportCallback | None
) -> ErasureView:
    hashes = suppression.erasure_hash_files(ctx.home, erasure_id)
    # A killed erasure's run whose lease expired is over: its export is free again.
    runs.mark_interrupted(ctx)
    with ctx.db.session() as session:
        row = session.get(Erasure, erasure_id)
        assert row is not None
        results: dict[str, Any] = dict(row.exports or {})
        exports = session.execute(
            select(Export.id, Export.name, Export.audience_id, Export.connection_id).order_by(
                Export.name
            )
        ).all()
    for export_id, name, audience_id, connection_id in exports:
        previous = dict(results.get(name) or {})
        if previous.get("status") == "done":
            continue  # removed already (a resumed erasure finishes the others)
        # Checked before anything else: a run under way may be adding the person now
        # (it planned before the erasure); the erasure waits for it and is resumed after.
        with ctx.db.session() as session:
            active = session.scalar(
                select(Run.id).where(Run.export_id == export_id, Run.status == "running")
            )
        sent_before = bool(ctx.storage.listing(f"{export_key(export_id)}/audiences/{audience_id}"))
        if active is not None:
            result = _pending(
                f"run {active} of the export was under way: the erasure is resumed once it ends.",
                previous,
                Fix("resume_erasure", str(erasure_id)),
            )
        elif connection_id is None and not sent_before:
            continue  # never sent anything and cannot send: nothing to erase there
        else:
            # Sent to every audience, whether or not the snapshot holds them: an add
            # Snapchat applied but never acknowledged is not in the snapshot, and
            # removing an identifier an audience lacks is harmless (docs/privacy.md).
            held = erasing.held_of(Snapshot.of(ctx, export_id, audience_id), hashes)
            result = _erase_export(ctx, actor, erasure_id, export_id, name, connection_id, previous)
            for kind, number in (previous.get("held") or {}).items():
                held[kind] = max(held.get(kind, 0), int(number))  # an earlier attempt's
            if held:
                result["held"] = held
        after = erasing.held_of(Snapshot.of(ctx, export_id, audience_id), hashes)
        if result.get("status") != "pending" and after:
            result = _pending(
                f"{sum(after.values())} identifier(s) are still held after run "
                f"{result['runs'][-1]}: resume the erasure.",
                result,
            )
        results[name] = result
        with ctx.db.session() as session:
            stored = session.get(Erasure, erasure_id)
            assert stored is not None
            stored.exports = dict(results)
            stored.lease_until = _lease_end(ctx)
        if after_export is not None:
            after_export(name)
    done = all(item.get("status") == "done" for item in results.values())
    with ctx.db.session() as session:
        stored = session.get(Erasure, erasure_id)
        assert stored is not None
        stored.exports = dict(results)
        stored.status = "succeeded" if done else "partially_succeeded"
        stored.finished_at = utcnow()
        stored.lease_until = None
        removed = sum(
            sum(int(n) for n in (item.get("removed") or {}).values()) for item in results.values()
        )
        audit.record(
            session, actor, "privacy.erase.finish", f"erasure:{erasure_id}",
            after={"status": stored.status, "exports": len(results), "removed": removed},
        )  # fmt: skip
        session.flush()
        return _erasure_view(stored)


def _erase_export(
    ctx: Context,
    actor: Actor,
    erasure_id: int,
    export_id: int,
    name: str,
    connection_id: int | None,
    previous: dict[str, Any],
) -> dict[str, Any]:
    with ctx.db.session() as session:
        connection = session.get(Connection, connection_id) if connection_id else None
        active = session.scalar(
            select(Run.id).where(Run.export_id == export_id, Run.status.in_(["queued", "running"]))
        )
    if connection is None:
        return _pending(
            "the export has no connection: give it one, then resume the erasure (its runs "
            "already leave the erased identifiers out).",
            previous,
        )
    if connection.status == NEEDS_REAUTH:
        return _pending(
            f"connection {connection.name!r} needs re-authentication: re-authenticate it, "
            "then resume the erasure.",
            previous,
        )
    if active is not None:
        return _pending(
            f"run {active} of the export was under way: resume the erasure once it ends.",
            previous,
        )
    try:
        run_id = runs.start_erasure_run(ctx, actor, name, erasure_id)
    except ActiveRunError as error:
        return _pending(
            f"run {error.run_id} of the export was under way: resume the erasure once it ends.",
            previous,
        )
    except AudiencesyncError as error:
        return _pending(error.message, previous)
    view = runs.execute_claimed(ctx, run_id)
    # Every run of this erasure on this export, a killed one's included (its last
    # recorded figures): the report then counts what an interrupted attempt removed too.
    with ctx.db.session() as session:
        attempts = session.execute(
            select(Run.id, Run.counts)
            .where(Run.export_id == export_id, Run.erasure_id == erasure_id)
            .order_by(Run.id)
        ).all()
    # Each attempt sends every hash of a type in one request (an erasure names at most
    # MAX_ERASURE_IDENTIFIERS of each), so the most one attempt removed is the distinct
    # count; a sum would count twice what a resumed attempt sent again.
    removed: dict[str, int] = {}
    for _, counts in attempts:
        for kind, number in ((counts or {}).get("removed") or {}).items():
            removed[kind] = max(removed.get(kind, 0), int(number))
    result: dict[str, Any] = {
        "runs": [attempt_id for attempt_id, _ in attempts],
        "removed": removed,
        "status": "done" if view.status == "succeeded" else "pending",
        "message": view.errors[-1] if view.errors else None,
    }
    return result


def list_erasures(ctx: Context, actor: Actor, *, limit: int = 50) -> list[ErasureView]:
    require_admin(actor)
    with ctx.db.session() as session:
        rows = session.scalars(select(Erasure).order_by(Erasure.id.desc()).limit(limit)).all()
        return [_erasure_view(row) for row in rows]


def get_erasure(ctx: Context, actor: Actor, erasure_id: int) -> ErasureView:
    require_admin(actor)
    with ctx.db.session() as session:
        row = session.get(Erasure, erasure_id)
        if row is None:
            raise NotFoundError(
                f"there is no erasure {erasure_id}.", fix=Fix("list", "privacy erasures")
            )
        return _erasure_view(row)


def unfinished_erasures(ctx: Context) -> list[int]:
    """Erasures not finished (interrupted, or with exports pending)."""
    with ctx.db.session() as session:
        return list(
            session.scalars(
                select(Erasure.id)
                .where(Erasure.status.in_(["recording", "running", "partially_succeeded"]))
                .order_by(Erasure.id)
            )
        )
