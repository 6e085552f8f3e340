"""Preparing segments for evaluation and recording each evaluation's size and time.

Shared by the permission-checked services (count, preview, explain, SQL) and by the
membership stream the export engine reads.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from audiencesync.control.context import Context
from audiencesync.control.models import Dataset, Segment, SegmentEvaluation
from audiencesync.errors import Fix, NotFoundError, UserInputError
from audiencesync.segments.compiler import RuleCompiler
from audiencesync.segments.rules import RuleNode, parse_rules, references, rules_error
from audiencesync.segments.source import ProfileSource, open_source
from audiencesync.segments.validation import SegmentInfo, check_rules


@dataclass(frozen=True)
class LoadedSegment:
    """A saved segment, its rules parsed."""

    id: int
    name: str
    dataset: str
    rules: RuleNode


@dataclass(frozen=True)
class Prepared:
    """Segments of one dataset, checked against the live table and ready to compile."""

    source: ProfileSource
    compiler: RuleCompiler
    segments: list[LoadedSegment]
    now: datetime


def missing_segment(name: str) -> NotFoundError:
    return NotFoundError(f"there is no segment named {name!r}.", fix=Fix("list", "segments"))


def load_segments(session: Session, names: Sequence[str]) -> list[LoadedSegment]:
    """The named segments, in the order given (each once), or NotFoundError."""
    wanted = list(dict.fromkeys(names))
    rows = session.execute(
        select(Segment, Dataset.name)
        .join(Dataset, Segment.dataset_id == Dataset.id)
        .where(Segment.name.in_(wanted))
    ).all()
    found = {
        seg.name: LoadedSegment(seg.id, seg.name, ds, parse_rules(seg.rules)) for seg, ds in rows
    }
    for name in wanted:
        if name not in found:
            raise missing_segment(name)
    return [found[n] for n in wanted]


def _dataset_segments(session: Session, dataset: str) -> dict[str, LoadedSegment]:
    rows = session.execute(
        select(Segment)
        .join(Dataset, Segment.dataset_id == Dataset.id)
        .where(Dataset.name == dataset)
    ).scalars()
    return {s.name: LoadedSegment(s.id, s.name, dataset, parse_rules(s.rules)) for s in rows}


def _closure(start: Sequence[LoadedSegment], pool: dict[str, LoadedSegment]) -> list[LoadedSegment]:
    """``start`` and every segment they reach through references."""
    seen: dict[str, LoadedSegment] = {}
    todo = list(start)
    while todo:
        segment = todo.pop()
        if segment.name in seen:
            continue
        seen[segment.name] = segment
        todo.extend(pool[r] for r in references(segment.rules) if r in pool)
    return list(seen.values())


@contextmanager
def prepare(
    ctx: Context, names: Sequence[str], *, now: datetime | None = None
) -> Iterator[Prepared]:
    """Open the dataset of ``names`` and check their rules against its live columns.

    Raises NotFoundError (a segment or the dataset is missing), UserInputError (the
    segments are over different datasets, or a rule no longer fits the table).
    """
    if not names:
        raise UserInputError("name at least one segment.")
    instant = now or datetime.now(UTC)
    with ctx.db.session() as session:
        segments = load_segments(session, names)
        datasets = sorted({s.dataset for s in segments})
        if len(datasets) > 1:
            by = ", ".join(f"{s.name} ({s.dataset})" for s in segments)
            raise UserInputError(
                f"segments of different datasets cannot be combined ({by}): "
                "pick segments of one dataset."
            )
        pool = _dataset_segments(session, datasets[0])
    involved = _closure(segments, pool)
    catalog = {
        s.name: SegmentInfo(s.name, s.dataset, tuple(references(s.rules))) for s in pool.values()
    }
    with open_source(ctx, datasets[0]) as source:
        columns = source.columns()
        for segment in involved:
            problems = check_rules(
                segment.rules,
                dataset=source.dataset,
                columns=columns,
                segment=segment.name,
                catalog=catalog,
            )
            if problems:
                raise rules_error(
                    problems,
                    subject=f"segment {segment.name!r} no longer fits dataset "
                    f"{source.dataset!r} (update its rules)",
                )

        def resolve(name: str) -> RuleNode:
            if name not in pool:
                raise missing_segment(name)
            return pool[name].rules

        compiler = RuleCompiler(source.table, source.field_types(), now=instant, resolve=resolve)
        yield Prepared(source, compiler, segments, instant)


def record_evaluation(
    ctx: Context,
    segment_id: int,
    *,
    kind: str,
    size: int,
    started: float,
    actor: str | None,
) -> None:
    """Store one evaluation (size, duration since ``started`` on the perf clock, now)."""
    duration_ms = round((time.perf_counter() - started) * 1000)
    with ctx.db.session() as session:
        if session.get(Segment, segment_id) is None:
            return  # removed while it was evaluated: nothing to attach the figure to
        session.add(
            SegmentEvaluation(
                segment_id=segment_id, kind=kind, size=size, duration_ms=duration_ms, actor=actor
            )
        )
