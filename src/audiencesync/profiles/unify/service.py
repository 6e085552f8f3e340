"""Unifications: define, refresh, explain, figures, remove (permission-checked).

``audiencesync profiles unify NAME --from DATASET:KEY ... --rules FILE`` defines (or
redefines) a unification and computes it at once: its output is dataset ``NAME`` (kind
``unified``, key ``unified_id``), one row per person, which segments, counts, previews
and exports use like any other dataset. A refresh (by hand or in the system refresh,
after the sources) computes it again; ids stay stable (matching.py). The current
version's files live in ``<home>/unified/NAME/<version>/``: the link table
``records.parquet`` (unified_id, dataset, skey), the shared keys ``keys.parquet`` (no
values: rule, how many records share it, refused or not) and ``history.parquet``.

A new version is computed into a new folder, then switched in one transaction, checking
that no other refresh switched first; a failed refresh leaves the previous version.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session

from audiencesync import duck
from audiencesync.control import audit
from audiencesync.control.context import Context
from audiencesync.control.models import Dataset, Unification, UnificationSource, utcnow
from audiencesync.control.permissions import Action, Actor, require
from audiencesync.errors import ConflictError, Fix, NotFoundError, UserInputError, about
from audiencesync.profiles import linked, store
from audiencesync.profiles.store import UNIFIED, check_dataset_name, closest
from audiencesync.profiles.unify.matching import (
    HISTORY_FILE,
    KEYS_FILE,
    RECORDS_FILE,
    SourceInput,
    run_matching,
)
from audiencesync.profiles.unify.rules import (
    UNIFIED_ID,
    UnificationRules,
    dump_unification_rules,
    parse_unification_rules,
)

log = logging.getLogger(__name__)

#: How many source records ``explain`` shows at most.
MAX_EXPLAIN_RECORDS = 200


@dataclass(frozen=True)
class SourceSpec:
    dataset: str
    key: str


@dataclass(frozen=True)
class UnificationView:
    name: str
    sources: tuple[SourceSpec, ...]
    rules: dict[str, Any]
    version: int
    stats: dict[str, Any]
    refreshed_at: datetime | None
    created_by: str
    updated_by: str


@dataclass(frozen=True)
class ExplainLink:
    """A key some records of the profile share: the rule, who shares it, whether used."""

    rule: str
    records: tuple[tuple[str, str], ...]
    shared_by: int
    refused: bool
    #: the key is shared with records of other profiles: not refused, but their group was
    #: above ``max_cluster_size`` (or had not settled), so its records were kept apart.
    kept_apart: bool = False


@dataclass(frozen=True)
class ExplainRecord:
    dataset: str
    key: str
    #: the highest-priority rule that joins it to another record of the profile.
    joined_by: str | None
    fields: dict[str, Any]


@dataclass(frozen=True)
class Explanation:
    name: str
    unified_id: int
    record_count: int
    records: tuple[ExplainRecord, ...]
    links: tuple[ExplainLink, ...]
    history: tuple[dict[str, Any], ...]


def parse_source(spec: str) -> SourceSpec:
    """``DATASET:KEY`` as a SourceSpec; UserInputError saying the form otherwise."""
    dataset, sep, key = spec.partition(":")
    if not sep or not dataset.strip() or not key.strip():
        raise UserInputError(
            f"{spec[:100]!r} is not DATASET:KEY (write the dataset name, a colon and its key "
            "column, such as crm:customer_id).",
            field="sources",
        )
    with about("sources"):
        return SourceSpec(check_dataset_name(dataset), key.strip())


def _view(row: Unification, sources: list[SourceSpec]) -> UnificationView:
    return UnificationView(
        name=row.name,
        sources=tuple(sources),
        rules=dict(row.rules),
        version=row.version,
        stats=dict(row.stats or {}),
        refreshed_at=row.refreshed_at,
        created_by=row.created_by,
        updated_by=row.updated_by,
    )


def _sources_of(session: Session, row: Unification) -> list[SourceSpec]:
    found = session.execute(
        select(Dataset.name, UnificationSource.key_column)
        .join(Dataset, Dataset.id == UnificationSource.dataset_id)
        .where(UnificationSource.unification_id == row.id)
        .order_by(UnificationSource.position)
    ).all()
    return [SourceSpec(str(name), str(key)) for name, key in found]


def _get(session: Session, name: str) -> Unification:
    row = session.scalar(select(Unification).where(Unification.name == check_dataset_name(name)))
    if row is None:
        raise NotFoundError(
            f"there is no unification named {name!r}.", fix=Fix("list_unifications")
        )
    return row


def _check_definition(
    session: Session, name: str, sources: list[SourceSpec], rules: UnificationRules
) -> list[tuple[Dataset, SourceSpec]]:
    if not sources:
        raise UserInputError("give at least one source, as DATASET:KEY.", field="sources")
    names = [s.dataset for s in sources]
    if len(set(names)) != len(names):
        raise UserInputError(
            "a dataset is given twice among the sources: give each source once.",
            field="sources",
        )
    if name in names:
        raise UserInputError(
            f"the unification cannot be named like its source {name!r}: choose another name.",
            field="name",
        )
    for dataset in rules.sources:
        if dataset not in names:
            raise UserInputError(
                f"the rules map source {dataset!r}, which is not among the sources: add "
                f"{dataset}:KEY to the sources or remove it from the rules.",
                field="sources",
            )
    found = []
    match_fields = {f for rule in rules.match for f in rule.fields}
    for spec in sources:
        row = session.scalar(select(Dataset).where(Dataset.name == spec.dataset))
        if row is None:
            raise NotFoundError(
                f"there is no profile dataset named {spec.dataset!r}.",
                field="sources",
                fix=Fix("list", "profiles"),
            )
        if row.kind == UNIFIED:
            raise UserInputError(
                f"{spec.dataset!r} is itself a unified dataset: unify its sources directly.",
                field="sources",
            )
        columns = [c["name"] for c in row.columns]
        if spec.key not in columns:
            raise UserInputError(
                f"dataset {spec.dataset!r} has no key column {spec.key!r}: "
                f"{closest(spec.key, columns)}.",
                field="sources",
            )
        mapping = rules.mapping_of(spec.dataset, columns)
        for field, column in mapping.items():
            if column not in columns:
                raise UserInputError(
                    f"the rules map field {field!r} of source {spec.dataset!r} to column "
                    f"{column!r}, which it does not have: {closest(column, columns)}.",
                    field="rules",
                )
        updated = rules.sources.get(spec.dataset)
        if updated is not None and updated.updated_at and updated.updated_at not in columns:
            raise UserInputError(
                f"source {spec.dataset!r} has no column {updated.updated_at!r} for "
                f"updated_at: {closest(updated.updated_at, columns)}.",
                field="rules",
            )
        if not match_fields & set(mapping):
            raise UserInputError(
                f"source {spec.dataset!r} has none of the fields the match rules use "
                f"({', '.join(sorted(match_fields))}): map at least one of them under "
                f"sources: {spec.dataset}: fields.",
                field="rules",
            )
        found.append((row, spec))
    existing = session.scalar(select(Dataset).where(Dataset.name == name))
    if existing is not None and existing.kind != UNIFIED:
        raise ConflictError(
            f"{name!r} is already a dataset ({existing.kind}): choose another name for the "
            "unification.",
            field="name",
        )
    return found


def unify(
    ctx: Context,
    actor: Actor,
    name: str,
    *,
    sources: list[SourceSpec],
    rules: UnificationRules,
) -> UnificationView:
    """Define (or redefine) unification ``name`` and compute it.

    Raises UserInputError (sources, columns, rules), NotFoundError (a dataset),
    ConflictError (the name belongs to another dataset), PermissionDeniedError.
    Nothing is saved when the first computation fails.
    """
    require(actor, Action.EDIT_DATASETS)
    with about("name"):
        unified = check_dataset_name(name)
    with ctx.db.session() as session:
        _check_definition(session, unified, sources, rules)
        row = session.scalar(select(Unification).where(Unification.name == unified))
        state = None if row is None else (row.version, row.run_path, row.next_id)
    return _compute(ctx, actor, unified, sources, rules, state, define=True)


def refresh(ctx: Context, actor: Actor, name: str) -> UnificationView:
    """Compute unification ``name`` again from its sources' current data."""
    require(actor, Action.EDIT_DATASETS)
    with ctx.db.session() as session:
        row = _get(session, name)
        sources = _sources_of(session, row)
        rules = parse_unification_rules(row.rules, source=f"unification {row.name!r}")
        _check_definition(session, row.name, sources, rules)
        state = (row.version, row.run_path, row.next_id)
        unified = row.name
    return _compute(ctx, actor, unified, sources, rules, state, define=False)


def _local_copy(ctx: Context, dataset: str, scratch: Path) -> Path:
    """A local path of an imported dataset's current Parquet file: the file itself in a
    local storage, else a copy fetched from the shared storage into ``scratch``."""
    key = store.parquet_key(ctx, dataset)
    local = ctx.storage.local_path(key)
    if local is not None:
        return local
    target = scratch / f"{dataset}.source.parquet"
    scratch.mkdir(parents=True, exist_ok=True)
    ctx.storage.get_file(key, target)
    return target


def _materialize(ctx: Context, spec: SourceSpec, columns: list[str], scratch: Path) -> Path:
    """The Parquet file to read a source from: its current version, or (a linked table)
    its needed columns copied into ``scratch`` batch by batch."""
    with ctx.db.session() as session:
        kind = session.scalar(select(Dataset.kind).where(Dataset.name == spec.dataset))
    if kind != linked.LINK:
        return _local_copy(ctx, spec.dataset, scratch)
    target = scratch / f"{spec.dataset}.parquet"
    with linked.open_linked(ctx, spec.dataset) as (_, table), warnings.catch_warnings():
        # DuckDB 1.5 flags the fetch call Ibis 12 streams with as deprecated (and fails
        # when warnings are errors); it is the call that streams (segments/membership.py).
        warnings.filterwarnings(
            "ignore", message=r"fetch_\w+\(\) is deprecated", category=DeprecationWarning
        )
        reader = table.select(*dict.fromkeys(columns)).to_pyarrow_batches(chunk_size=100_000)
        with pq.ParquetWriter(target, reader.schema, compression="zstd") as writer:
            for batch in reader:
                writer.write_batch(batch)
    return target


def _compute(
    ctx: Context,
    actor: Actor,
    name: str,
    sources: list[SourceSpec],
    rules: UnificationRules,
    state: tuple[int, str | None, int] | None,
    *,
    define: bool,
) -> UnificationView:
    started = time.perf_counter()
    version, previous_path, next_id = state if state is not None else (0, None, 1)
    folder = ctx.home / "unified" / name
    out = folder / uuid.uuid4().hex
    out.mkdir(parents=True)
    try:
        inputs = []
        with ctx.db.session() as session:
            described = {
                s.dataset: [
                    c["name"]
                    for c in session.scalar(
                        select(Dataset.columns).where(Dataset.name == s.dataset)
                    )
                    or []
                ]
                for s in sources
            }
        for spec in sources:
            mapping = rules.mapping_of(spec.dataset, described[spec.dataset])
            mapped = rules.sources.get(spec.dataset)
            updated_at = mapped.updated_at if mapped is not None else None
            needed = [spec.key, *mapping.values(), *([updated_at] if updated_at else [])]
            path = _materialize(ctx, spec, needed, out)
            inputs.append(SourceInput(spec.dataset, spec.key, path, mapping, updated_at))
        previous = ctx.home / previous_path / RECORDS_FILE if previous_path else None
        result = run_matching(rules, inputs, out, previous=previous, next_id=next_id)
        for spec in sources:  # materialized linked tables are not kept
            (out / f"{spec.dataset}.parquet").unlink(missing_ok=True)
        data_dir = ctx.home / "profiles" / name
        data_dir.mkdir(parents=True, exist_ok=True)
        data_file = data_dir / f"{uuid.uuid4().hex}.parquet"
        shutil.move(str(result.unified), data_file)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    try:
        view = _switch(ctx, actor, name, sources, rules, version, out, data_file, result, define)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        data_file.unlink(missing_ok=True)
        raise
    _prune(folder, keep={out.name, Path(previous_path).name if previous_path else ""})
    log.info("unification %s: refreshed in %.1fs", name, time.perf_counter() - started)
    return view


def _switch(
    ctx: Context,
    actor: Actor,
    name: str,
    sources: list[SourceSpec],
    rules: UnificationRules,
    version: int,
    out: Path,
    data_file: Path,
    result: Any,
    define: bool,
) -> UnificationView:
    now = utcnow()
    with ctx.db.session() as session:
        row = session.scalar(select(Unification).where(Unification.name == name))
        if (row.version if row is not None else 0) != version:
            raise ConflictError(
                f"unification {name!r} was refreshed or changed by someone else meanwhile: "
                "run the command again."
            )
        if row is None and not define:
            raise NotFoundError(f"unification {name!r} was removed meanwhile.")
        dataset = session.scalar(select(Dataset).where(Dataset.name == name))
        if dataset is not None and dataset.kind != UNIFIED:
            raise ConflictError(f"{name!r} became another dataset meanwhile: choose another name.")
        if dataset is None:
            dataset = Dataset(name=name, kind=UNIFIED, version=0)
            session.add(dataset)
        previous_file = dataset.data_path
        dataset.key_column = UNIFIED_ID
        dataset.source = "unification of " + ", ".join(s.dataset for s in sources)
        dataset.options = {"unification": name}
        key = data_file.relative_to(ctx.home).as_posix()
        if ctx.storage.local_path(key) != data_file:
            # Shared storage elsewhere (a bucket): the dataset's readers look there.
            ctx.storage.put_file(data_file, key)
        dataset.data_path = key
        dataset.version = (dataset.version or 0) + 1
        dataset.row_count = result.profiles
        dataset.columns = result.columns
        dataset.imported_at = now
        dataset.imported_by = actor.name
        session.flush()
        before = None
        if row is None:
            row = Unification(name=name, created_at=now, created_by=actor.name, stats={})
            session.add(row)
        else:
            before = {"version": row.version, "rules": row.rules}
        row.dataset_id = dataset.id
        if define:
            row.rules = dump_unification_rules(rules)
            row.updated_at = now
            row.updated_by = actor.name
        row.run_path = str(out.relative_to(ctx.home))
        row.next_id = result.next_id
        row.version = version + 1
        row.stats = result.stats
        row.refreshed_at = now
        session.flush()
        if define:
            session.query(UnificationSource).filter(
                UnificationSource.unification_id == row.id
            ).delete()
            for position, spec in enumerate(sources):
                source_id = session.scalar(select(Dataset.id).where(Dataset.name == spec.dataset))
                assert source_id is not None
                session.add(
                    UnificationSource(
                        unification_id=row.id,
                        position=position,
                        dataset_id=source_id,
                        key_column=spec.key,
                    )
                )
        audit.record(
            session,
            actor,
            "unification.define" if define else "unification.refresh",
            f"dataset:{name}",
            before=before,
            after={
                "version": row.version,
                "sources": [f"{s.dataset}:{s.key}" for s in sources],
                "profiles": result.profiles,
                "records": result.stats.get("source_records_total"),
            },
        )
        session.flush()
        view = _view(row, sources)
    if previous_file:
        keep = {data_file.name, Path(previous_file).name}
        store._prune(ctx, Path(previous_file).parent.as_posix(), keep=keep)
    return view


def _prune(folder: Path, keep: set[str]) -> None:
    """Remove versions' folders but the current, the previous and recent ones."""
    cutoff = time.time() - store.READER_GRACE_SECONDS
    for candidate in folder.iterdir():
        if candidate.name in keep or not candidate.is_dir():
            continue
        try:
            if candidate.stat().st_mtime < cutoff:
                shutil.rmtree(candidate, ignore_errors=True)
        except FileNotFoundError:
            continue


def list_unifications(ctx: Context, actor: Actor) -> list[UnificationView]:
    require(actor, Action.READ)
    with ctx.db.session() as session:
        rows = list(session.scalars(select(Unification).order_by(Unification.name)))
        return [_view(r, _sources_of(session, r)) for r in rows]


def get_unification(ctx: Context, actor: Actor, name: str) -> UnificationView:
    require(actor, Action.READ)
    with ctx.db.session() as session:
        row = _get(session, name)
        return _view(row, _sources_of(session, row))


def refresh_all(ctx: Context, actor: Actor) -> list[UnificationView]:
    """Refresh every unification (after the datasets they read)."""
    return [refresh(ctx, actor, u.name) for u in list_unifications(ctx, actor)]


def _run_folder(ctx: Context, name: str) -> tuple[Path, UnificationView]:
    with ctx.db.session() as session:
        row = _get(session, name)
        if row.run_path is None:
            raise ConflictError(f"unification {row.name!r} has not been computed: refresh it.")
        return ctx.home / row.run_path, _view(row, _sources_of(session, row))


def explain(ctx: Context, actor: Actor, name: str, unified_id: int) -> Explanation:
    """The source records of one unified profile and the keys that joined them.

    Raises NotFoundError (no such unification or id in the current version).
    """
    require(actor, Action.READ)
    folder, view = _run_folder(ctx, name)
    rules = parse_unification_rules(view.rules, source=f"unification {view.name!r}")
    con = duck.connect()
    try:
        records = con.execute(
            f"SELECT rec, dataset, skey FROM read_parquet('{folder / RECORDS_FILE}') "
            "WHERE unified_id = ? ORDER BY rec",
            [unified_id],
        ).fetchall()
        if not records:
            raise NotFoundError(
                f"unification {view.name!r} has no profile {unified_id}: ids are in its "
                f"dataset's {UNIFIED_ID} column.",
                fix=Fix("show_profiles", view.name),
            )
        shown = records[:MAX_EXPLAIN_RECORDS]
        by_rec = {int(r): (str(d), str(k)) for r, d, k in records}
        con.execute("CREATE TABLE cluster (rec BIGINT)")
        con.executemany("INSERT INTO cluster VALUES (?)", [[r] for r in by_rec])
        keys = con.execute(
            f"SELECT k.kid, k.rule, any_value(k.n), bool_or(k.refused), list(k.rec ORDER BY k.rec) "
            f"FROM read_parquet('{folder / KEYS_FILE}') k JOIN cluster USING (rec) "
            "GROUP BY k.kid, k.rule ORDER BY k.rule, k.kid"
        ).fetchall()
        history = con.execute(
            f"SELECT event, unified_id, previous_id FROM read_parquet('{folder / HISTORY_FILE}') "
            "WHERE unified_id = ? OR previous_id = ? ORDER BY event, previous_id",
            [unified_id, unified_id],
        ).fetchall()
    finally:
        con.close()
    links = []
    joined: dict[int, int] = {}
    for _kid, rule, n, refused, recs in keys:
        apart = not refused and int(n) > len(recs)
        if len(recs) < 2 and not refused and not apart:
            continue
        links.append(
            ExplainLink(
                rule=rules.match[int(rule)].name,
                records=tuple(by_rec[int(r)] for r in recs),
                shared_by=int(n),
                refused=bool(refused),
                kept_apart=apart,
            )
        )
        if not refused and len(recs) >= 2:
            for r in recs:
                joined[int(r)] = min(joined.get(int(r), int(rule)), int(rule))
    fields = _source_fields(ctx, view, rules, [(str(d), str(k)) for _, d, k in shown])
    return Explanation(
        name=view.name,
        unified_id=unified_id,
        record_count=len(records),
        records=tuple(
            ExplainRecord(
                dataset=str(d),
                key=str(k),
                joined_by=rules.match[joined[int(r)]].name if int(r) in joined else None,
                fields=fields.get((str(d), str(k)), {}),
            )
            for r, d, k in shown
        ),
        links=tuple(links),
        history=tuple({"event": str(e), "unified_id": u, "previous_id": p} for e, u, p in history),
    )


def _source_fields(
    ctx: Context,
    view: UnificationView,
    rules: UnificationRules,
    wanted: list[tuple[str, str]],
) -> dict[tuple[str, str], dict[str, Any]]:
    """The common fields of each wanted source record, read from its dataset now."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for spec in view.sources:
        keys = [k for d, k in wanted if d == spec.dataset]
        if not keys:
            continue
        try:
            with ctx.db.session() as session:
                row = session.scalar(select(Dataset).where(Dataset.name == spec.dataset))
                kind = row.kind if row is not None else None
                columns = [c["name"] for c in row.columns] if row is not None else []
            mapping = rules.mapping_of(spec.dataset, columns)
            if kind == linked.LINK:
                with linked.open_linked(ctx, spec.dataset) as (_, table):
                    picked = table.filter(table[spec.key].cast("string").isin(keys)).select(
                        spec.key, *dict.fromkeys(mapping.values())
                    )
                    rows = picked.to_pyarrow().to_pylist()
            else:
                path = _local_copy(ctx, spec.dataset, ctx.home / "unified" / ".explain")
                con = duck.connect()
                try:
                    selected = ", ".join(
                        '"' + c.replace('"', '""') + '"'
                        for c in dict.fromkeys([spec.key, *mapping.values()])
                    )
                    qkey = '"' + spec.key.replace('"', '""') + '"'
                    rows = (
                        con.execute(
                            f"SELECT {selected} FROM read_parquet(?) "
                            f"WHERE CAST({qkey} AS VARCHAR) IN (SELECT unnest(?))",
                            [str(path), keys],
                        )
                        .to_arrow_table()
                        .to_pylist()
                    )
                finally:
                    con.close()
        except (duckdb.Error, NotFoundError, ConflictError, UserInputError):
            continue  # the source changed since: the record is shown without fields
        for record in rows:
            found[(spec.dataset, str(record[spec.key]))] = {
                field: record.get(column) for field, column in mapping.items()
            }
    return found


def links_file(ctx: Context, actor: Actor, name: str) -> Path:
    """The link table of the current version (unified_id, dataset, skey, rec)."""
    require(actor, Action.READ)
    folder, _ = _run_folder(ctx, name)
    return folder / RECORDS_FILE


def export_links(ctx: Context, actor: Actor, name: str, target: Path) -> int:
    """Write the link table (unified_id, dataset, source_key) to ``target`` (Parquet or
    CSV by extension); returns its rows. The file holds source keys, not identifiers."""
    source = links_file(ctx, actor, name)
    if target.suffix.lower() not in (".parquet", ".csv"):
        raise UserInputError("the output file must end in .parquet or .csv.", field="output")
    fmt = "(FORMAT csv, HEADER)" if target.suffix.lower() == ".csv" else "(FORMAT parquet)"
    con = duck.connect()
    try:
        escaped = str(target).replace("'", "''")
        con.execute(
            f"COPY (SELECT unified_id, dataset, skey AS source_key FROM read_parquet(?) "
            f"ORDER BY unified_id, dataset, source_key) TO '{escaped}' {fmt}",
            [str(source)],
        )
        row = con.execute("SELECT count(*) FROM read_parquet(?)", [str(source)]).fetchone()
    except duckdb.IOException as error:
        raise UserInputError(f"{target} cannot be written ({error}): check the folder.") from None
    finally:
        con.close()
    return int(row[0]) if row else 0


def remove_files(ctx: Context, name: str) -> None:
    """Remove a unification's version folders (its dataset removes its own file)."""
    shutil.rmtree(ctx.home / "unified" / name, ignore_errors=True)


def sources_using(session: Session, dataset_id: int) -> list[str]:
    """Names of the unifications reading a dataset."""
    return list(
        session.scalars(
            select(Unification.name)
            .join(UnificationSource, UnificationSource.unification_id == Unification.id)
            .where(UnificationSource.dataset_id == dataset_id)
            .order_by(Unification.name)
        )
    )
