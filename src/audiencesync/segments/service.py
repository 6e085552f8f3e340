"""Segment services: create, update, remove, list, show, count, preview, explain, history.

Every function checks the actor's role (EDIT_SEGMENTS to change, READ to look) and every
change is written to the audit log in the same transaction. Rules are checked against
the dataset's live columns and the other segments before they are saved.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import ibis
import pyarrow as pa
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from audiencesync.control import audit
from audiencesync.control.context import Context
from audiencesync.control.models import (
    Dataset,
    Segment,
    SegmentEvaluation,
    SegmentReference,
    utcnow,
)
from audiencesync.control.permissions import Action, Actor, require
from audiencesync.control.sync_models import Export, ExportSegment
from audiencesync.errors import ConflictError, Fix, UserInputError
from audiencesync.profiles.store import check_dataset_name
from audiencesync.segments.evaluation import (
    missing_segment,
    prepare,
    record_evaluation,
)
from audiencesync.segments.rules import (
    AllGroup,
    AnyGroup,
    Condition,
    NotGroup,
    Operator,
    RuleNode,
    SegmentRef,
    children,
    dump_rules,
    format_path,
    parse_rules,
    references,
    rules_error,
)
from audiencesync.segments.source import dataset_row, open_source
from audiencesync.segments.validation import SegmentInfo, check_rules, suggest

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
MAX_PREVIEW_ROWS = 10_000


@dataclass(frozen=True)
class SegmentView:
    """A segment as users see it."""

    name: str
    dataset: str
    rules: RuleNode
    description: str | None
    references: tuple[str, ...]
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    last_size: int | None
    last_evaluated_at: datetime | None


@dataclass(frozen=True)
class EvaluationView:
    """One past evaluation: when, how (count, preview, explain, stream), size, duration."""

    at: datetime
    kind: str
    size: int
    duration_ms: int
    actor: str | None


@dataclass(frozen=True)
class CountResult:
    segment: str
    size: int
    seconds: float
    engine: str


@dataclass(frozen=True)
class Preview:
    """The first members (ordered by key) and the segment's full size."""

    segment: str
    size: int
    key_column: str
    rows: pa.Table


@dataclass(frozen=True)
class ExplainNode:
    """A rule or group with the number of profiles it selects on its own."""

    path: str
    label: str
    count: int
    children: tuple[ExplainNode, ...]


def check_segment_name(name: str) -> str:
    """``name`` lower-cased, or a UserInputError saying what a name may hold."""
    lowered = name.strip().lower()
    if not _NAME.match(lowered):
        raise UserInputError(
            f"{name!r} is not a valid segment name: use letters, digits, '_' or '-', "
            "starting with a letter or digit, at most 100 characters."
        )
    return lowered


def _get(session: Session, name: str) -> Segment:
    row = session.scalar(select(Segment).where(Segment.name == check_segment_name(name)))
    if row is None:
        raise missing_segment(name)
    return row


def _catalog(session: Session) -> dict[str, SegmentInfo]:
    rows = session.execute(select(Segment.name, Segment.rules, Dataset.name).join(Dataset)).all()
    return {
        name: SegmentInfo(name, dataset, tuple(references(parse_rules(rules))))
        for name, rules, dataset in rows
    }


def _check(ctx: Context, node: RuleNode, *, dataset: str, segment: str | None) -> None:
    """Raise one UserInputError listing every problem of ``node``; return when none."""
    with open_source(ctx, dataset) as source:
        columns = source.columns()
    with ctx.db.session() as session:
        catalog = _catalog(session)
    problems = check_rules(node, dataset=dataset, columns=columns, segment=segment, catalog=catalog)
    if problems:
        raise rules_error(problems)


def validate_rules(
    ctx: Context, actor: Actor, node: RuleNode, *, dataset: str, segment: str | None = None
) -> None:
    """Check rules without saving them (for editors): UserInputError lists every problem."""
    require(actor, Action.READ)
    dataset = check_dataset_name(dataset)
    dataset_row(ctx, dataset)
    _check(ctx, node, dataset=dataset, segment=check_segment_name(segment) if segment else None)


def _set_references(session: Session, segment: Segment, node: RuleNode) -> None:
    session.execute(delete(SegmentReference).where(SegmentReference.segment_id == segment.id))
    names = references(node)
    if not names:
        return
    ids = session.scalars(select(Segment.id).where(Segment.name.in_(names))).all()
    session.add_all(SegmentReference(segment_id=segment.id, referenced_id=i) for i in ids)


def _last_evaluation(session: Session, segment_id: int) -> SegmentEvaluation | None:
    return session.scalar(
        select(SegmentEvaluation)
        .where(SegmentEvaluation.segment_id == segment_id)
        .order_by(SegmentEvaluation.id.desc())
        .limit(1)
    )


def _view(row: Segment, dataset: str, last: SegmentEvaluation | None) -> SegmentView:
    node = parse_rules(row.rules)
    return SegmentView(
        name=row.name,
        dataset=dataset,
        rules=node,
        description=row.description,
        references=tuple(references(node)),
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
        last_size=None if last is None else last.size,
        last_evaluated_at=None if last is None else last.at,
    )


def _dataset_name(session: Session, dataset_id: int) -> str:
    return str(session.scalar(select(Dataset.name).where(Dataset.id == dataset_id)))


def create_segment(
    ctx: Context,
    actor: Actor,
    name: str,
    *,
    dataset: str,
    rules: RuleNode,
    description: str | None = None,
) -> SegmentView:
    """Save a new segment over ``dataset`` after checking its rules.

    Raises PermissionDeniedError, UserInputError (a bad name or rules: every problem
    listed), NotFoundError (no such dataset), ConflictError (the name is taken).
    """
    require(actor, Action.EDIT_SEGMENTS)
    segment = check_segment_name(name)
    dataset = check_dataset_name(dataset)
    dataset_id, _, _ = dataset_row(ctx, dataset)
    with ctx.db.session() as session:
        if session.scalar(select(Segment.id).where(Segment.name == segment)) is not None:
            raise ConflictError(
                f"a segment named {segment!r} already exists: choose another name",
                field="name",
                fix=Fix("update_segment"),
            )
    _check(ctx, rules, dataset=dataset, segment=segment)
    stored = dump_rules(rules)
    with ctx.db.session() as session:
        now = utcnow()
        row = Segment(
            name=segment,
            dataset_id=dataset_id,
            description=description,
            rules=stored,
            created_at=now,
            created_by=actor.name,
            updated_at=now,
            updated_by=actor.name,
        )
        session.add(row)
        try:
            session.flush()
        except IntegrityError:  # created by another process since the check above
            raise ConflictError(f"a segment named {segment!r} already exists.") from None
        _set_references(session, row, rules)
        audit.record(
            session, actor, "segment.create", f"segment:{segment}",
            after={"dataset": dataset, "rules": stored, "description": description},
        )  # fmt: skip
        session.flush()
        return _view(row, dataset, None)


def update_segment(
    ctx: Context,
    actor: Actor,
    name: str,
    *,
    rules: RuleNode | None = None,
    description: str | None = None,
) -> SegmentView:
    """Replace a segment's rules and/or description; new rules are checked first.

    Raises PermissionDeniedError, NotFoundError, UserInputError (every problem, a cycle
    included).
    """
    require(actor, Action.EDIT_SEGMENTS)
    with ctx.db.session() as session:
        row = _get(session, name)
        segment, dataset = row.name, _dataset_name(session, row.dataset_id)
    if rules is not None:
        _check(ctx, rules, dataset=dataset, segment=segment)
    with ctx.db.session() as session:
        row = _get(session, segment)
        before = {"rules": row.rules, "description": row.description}
        if rules is not None:
            row.rules = dump_rules(rules)
            _set_references(session, row, rules)
        if description is not None:
            row.description = description or None
        row.updated_at = utcnow()
        row.updated_by = actor.name
        audit.record(
            session, actor, "segment.update", f"segment:{segment}",
            before=before, after={"rules": row.rules, "description": row.description},
        )  # fmt: skip
        session.flush()
        return _view(row, dataset, _last_evaluation(session, row.id))


def segment_dependents(session: Session, segment_id: int) -> list[str]:
    """Names of the exports that use a segment (it cannot be removed while they do)."""
    return list(
        session.scalars(
            select(Export.name)
            .join(ExportSegment, ExportSegment.export_id == Export.id)
            .where(ExportSegment.segment_id == segment_id)
            .distinct()
            .order_by(Export.name)
        )
    )


def segment_users(session: Session, segment_id: int) -> list[str]:
    """Names of the segments whose rules refer to a segment."""
    user = aliased(Segment)
    return list(
        session.scalars(
            select(user.name)
            .join(SegmentReference, SegmentReference.segment_id == user.id)
            .where(SegmentReference.referenced_id == segment_id)
            .order_by(user.name)
        )
    )


def remove_segment(ctx: Context, actor: Actor, name: str) -> None:
    """Remove a segment and its history.

    Refused (ConflictError) while another segment refers to it or an export uses it,
    naming them. Raises PermissionDeniedError, NotFoundError.
    """
    require(actor, Action.EDIT_SEGMENTS)
    with ctx.db.session() as session:
        row = _get(session, name)
        users = segment_users(session, row.id)
        if users:
            raise ConflictError(
                f"segment {row.name!r} is used by segment(s) {', '.join(users)}: "
                "change or remove those first."
            )
        exports = segment_dependents(session, row.id)
        if exports:
            raise ConflictError(
                f"segment {row.name!r} is used by export(s) {', '.join(exports)}: "
                "take it out of those exports first."
            )
        audit.record(
            session, actor, "segment.remove", f"segment:{row.name}",
            before={"dataset": _dataset_name(session, row.dataset_id), "rules": row.rules},
        )  # fmt: skip
        session.execute(delete(SegmentEvaluation).where(SegmentEvaluation.segment_id == row.id))
        session.execute(delete(SegmentReference).where(SegmentReference.segment_id == row.id))
        session.delete(row)


def list_segments(ctx: Context, actor: Actor, *, dataset: str | None = None) -> list[SegmentView]:
    """Every segment (of one dataset when given), by name, with its last size and when."""
    require(actor, Action.READ)
    latest = (
        select(SegmentEvaluation.segment_id, func.max(SegmentEvaluation.id).label("last_id"))
        .group_by(SegmentEvaluation.segment_id)
        .subquery()
    )
    query = (
        select(Segment, Dataset.name, SegmentEvaluation)
        .join(Dataset, Segment.dataset_id == Dataset.id)
        .outerjoin(latest, latest.c.segment_id == Segment.id)
        .outerjoin(SegmentEvaluation, SegmentEvaluation.id == latest.c.last_id)
        .order_by(Segment.name)
    )
    if dataset is not None:
        query = query.where(Dataset.name == check_dataset_name(dataset))
    with ctx.db.session() as session:
        return [_view(row, ds, last) for row, ds, last in session.execute(query).all()]


def get_segment(ctx: Context, actor: Actor, name: str) -> SegmentView:
    """One segment, or NotFoundError."""
    require(actor, Action.READ)
    with ctx.db.session() as session:
        row = _get(session, name)
        return _view(row, _dataset_name(session, row.dataset_id), _last_evaluation(session, row.id))


def segment_history(
    ctx: Context, actor: Actor, name: str, *, limit: int = 20
) -> list[EvaluationView]:
    """The newest ``limit`` evaluations of a segment, newest first: its size over time."""
    require(actor, Action.READ)
    with ctx.db.session() as session:
        row = _get(session, name)
        evaluations = session.scalars(
            select(SegmentEvaluation)
            .where(SegmentEvaluation.segment_id == row.id)
            .order_by(SegmentEvaluation.id.desc())
            .limit(limit)
        )
        return [EvaluationView(e.at, e.kind, e.size, e.duration_ms, e.actor) for e in evaluations]


def segment_sql(ctx: Context, actor: Actor, name: str, *, now: datetime | None = None) -> str:
    """The SQL that selects the segment's members on its dataset's engine.

    Relative dates (``in the last``, ``before``) appear as the instants they mean at
    ``now`` (default: the current time).
    """
    require(actor, Action.READ)
    with prepare(ctx, [check_segment_name(name)], now=now) as prepared:
        table = prepared.source.table
        members = table.filter(prepared.compiler.predicate(prepared.segments[0].rules))
        return str(ibis.to_sql(members, dialect=prepared.source.engine))


def count_segment(
    ctx: Context, actor: Actor, name: str, *, now: datetime | None = None
) -> CountResult:
    """How many profiles the segment selects now; recorded in its history."""
    require(actor, Action.READ)
    started = time.perf_counter()
    with prepare(ctx, [check_segment_name(name)], now=now) as prepared:
        segment = prepared.segments[0]
        table = prepared.source.table
        size = int(
            table.count(where=prepared.compiler.predicate(segment.rules)).to_pyarrow().as_py()
        )
        engine = prepared.source.engine
    record_evaluation(ctx, segment.id, kind="count", size=size, started=started, actor=actor.name)
    return CountResult(segment.name, size, time.perf_counter() - started, engine)


def preview_segment(
    ctx: Context,
    actor: Actor,
    name: str,
    *,
    limit: int = 100,
    fields: Sequence[str] | None = None,
    now: datetime | None = None,
) -> Preview:
    """The first ``limit`` members ordered by key (all fields, or ``fields``), and the size."""
    require(actor, Action.READ)
    if not 0 <= limit <= MAX_PREVIEW_ROWS:
        raise UserInputError(
            f"the number of rows must be between 0 and {MAX_PREVIEW_ROWS:,}.", field="limit"
        )
    started = time.perf_counter()
    with prepare(ctx, [check_segment_name(name)], now=now) as prepared:
        segment = prepared.segments[0]
        source = prepared.source
        table = source.table
        names = list(table.columns)
        chosen = list(dict.fromkeys([source.key, *(fields if fields else names)]))
        for field in chosen:
            if field not in names:
                raise UserInputError(
                    f"dataset {source.dataset!r} has no field {field!r}; {suggest(field, names)}"
                )
        predicate = prepared.compiler.predicate(segment.rules)
        size = int(table.count(where=predicate).to_pyarrow().as_py())
        rows = table.filter(predicate).order_by(source.key).select(*chosen).limit(limit)
        result: pa.Table = rows.to_pyarrow()
    record_evaluation(ctx, segment.id, kind="preview", size=size, started=started, actor=actor.name)
    return Preview(segment.name, size, source.key, result)


def explain_segment(
    ctx: Context, actor: Actor, name: str, *, now: datetime | None = None
) -> ExplainNode:
    """The member count of every rule and group, as a tree (one scan of the table)."""
    require(actor, Action.READ)
    started = time.perf_counter()
    with prepare(ctx, [check_segment_name(name)], now=now) as prepared:
        segment = prepared.segments[0]
        table = prepared.source.table
        nodes = prepared.compiler.predicates_by_path(segment.rules)
        metrics = {f"n{i}": table.count(where=pred) for i, (_, _, pred) in enumerate(nodes)}
        counts = table.aggregate(**metrics).to_pyarrow()
    found = {path: int(counts[f"n{i}"][0].as_py() or 0) for i, (path, _, _) in enumerate(nodes)}
    labels = {path: label_of(node) for path, node, _ in nodes}

    def build(path: tuple[str, ...], node: RuleNode) -> ExplainNode:
        kids = tuple(build((*path, step), child) for step, child in children(node))
        return ExplainNode(format_path(path), labels[path], found[path], kids)

    tree = build((), segment.rules)
    record_evaluation(
        ctx, segment.id, kind="explain", size=tree.count, started=started, actor=actor.name
    )
    return tree


def label_of(node: RuleNode) -> str:
    """A short description of one node, as the explain tree shows it."""
    match node:
        case AllGroup():
            return "all of"
        case AnyGroup():
            return "any of"
        case NotGroup():
            return "not"
        case SegmentRef():
            return f"segment {node.segment}"
        case Condition():
            return describe_condition(node)
    raise TypeError(node)  # pragma: no cover


def describe_condition(condition: Condition) -> str:
    """``age between 30 and 50``, ``country in [US, GB]``, ``email is null``..."""
    value: Any = condition.value
    op = condition.op
    if value is None:
        return f"{condition.field} {op.value}"
    if op is Operator.BETWEEN and isinstance(value, list) and len(value) == 2:
        return f"{condition.field} between {value[0]} and {value[1]}"
    if isinstance(value, list):
        return f"{condition.field} {op.value} [{', '.join(str(v) for v in value)}]"
    return f"{condition.field} {op.value} {value}"
