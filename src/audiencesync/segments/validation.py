"""Checking a rule against a dataset's schema and the other segments, before it is saved.

Every problem is reported once, with the path of the rule it is about: an unknown field
(with the closest names), an operator that does not apply to the field's type, a value
that cannot be read as the field's type, a reference to a missing segment or to a
segment over another dataset, and a reference that leads back to the segment (a cycle).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from audiencesync.errors import UserInputError
from audiencesync.segments.fields import BadValueError, FieldType, field_type, read_value
from audiencesync.segments.rules import (
    LIST_OPERATORS,
    NULL_OPERATORS,
    RELATIVE_OPERATORS,
    Condition,
    Operator,
    Path_,
    Problem,
    RuleNode,
    SegmentRef,
    format_path,
    parse_period,
    scalar_problem,
    walk,
)


@dataclass(frozen=True)
class SegmentInfo:
    """What validation needs to know about an existing segment."""

    name: str
    dataset: str
    references: tuple[str, ...]


def check_rules(
    node: RuleNode,
    *,
    dataset: str,
    columns: Mapping[str, str],
    segment: str | None,
    catalog: Mapping[str, SegmentInfo],
) -> list[Problem]:
    """Every problem of ``node`` as the rules of segment ``segment`` over ``dataset``.

    ``columns`` maps field names to DuckDB type names; ``catalog`` holds the saved
    segments (the one being checked may be among them, with its old references).
    """
    problems: list[Problem] = []
    types = {name: field_type(type_) for name, type_ in columns.items()}
    for path, sub in walk(node):
        if isinstance(sub, Condition):
            problems.extend(_check_condition(path, sub, dataset, types))
        elif isinstance(sub, SegmentRef):
            problems.extend(_check_reference(path, sub, dataset, segment, catalog))
    return problems


def _check_condition(
    path: Path_, condition: Condition, dataset: str, types: Mapping[str, FieldType]
) -> list[Problem]:
    where = format_path(path)
    field = condition.field
    if field not in types:
        hint = suggest(field, list(types))
        return [Problem(where, f"dataset {dataset!r} has no field {field!r}; {hint}")]
    ftype = types[field]
    op = condition.op
    if not ftype.allows(op):
        ops = ", ".join(ftype.allowed_operators())
        return [
            Problem(
                where,
                f"{op.value!r} does not apply to field {field!r}, which holds {ftype.words}; "
                f"use one of {ops}.",
            )
        ]
    problem = _value_problem(condition, ftype)
    return [] if problem is None else [Problem(where, problem)]


def _value_problem(condition: Condition, ftype: FieldType) -> str | None:
    op, field, value = condition.op, condition.field, condition.value
    if op in NULL_OPERATORS:
        if value is not None:
            return f"{op.value!r} takes no value; remove the value {value!r}."
        return None
    if op in RELATIVE_OPERATORS:
        return _period_problem(op, value)
    if value is None:
        if op in (Operator.EQ, Operator.NE):
            other = "is null" if op is Operator.EQ else "is not null"
            return f"{op.value!r} needs a value; to match a missing value use {other!r}."
        return f"{op.value!r} needs a value."
    if op in LIST_OPERATORS:
        return _list_problem(op, field, value, ftype)
    return _read_problem(field, ftype, value)


def _read_problem(field: str, ftype: FieldType, value: object) -> str | None:
    try:
        read = read_value(ftype, value)
    except BadValueError as problem:
        return f"value {problem} (field {field!r} holds {ftype.words})."
    out_of_range = scalar_problem(read)  # such as the text "1e999" read as a number
    if out_of_range is not None:
        return f"the value {value!r} {out_of_range} (field {field!r} holds {ftype.words})."
    return None


def _list_problem(op: Operator, field: str, value: object, ftype: FieldType) -> str | None:
    if op is Operator.BETWEEN:
        if not isinstance(value, list) or len(value) != 2:
            return "'between' needs a list of two values [low, high], such as [30, 50]."
    elif not isinstance(value, list) or not value:
        return f"{op.value!r} needs a list of one or more values, such as [US, GB]."
    assert isinstance(value, list)
    for item in value:
        problem = _read_problem(field, ftype, item)
        if problem is not None:
            return problem
    if op is Operator.BETWEEN:
        low, high = (read_value(ftype, v) for v in value)
        if low > high:  # type: ignore[operator]
            return f"the low bound {value[0]!r} is above the high bound {value[1]!r}; swap them."
    return None


def _period_problem(op: Operator, value: object) -> str | None:
    try:
        period = parse_period(value)
    except UserInputError as error:
        return error.message
    example = "'90 days'" if op is Operator.IN_THE_LAST else "'30 days ago'"
    if period is None:
        return (
            f"{op.value!r} needs a period such as {example}, '12 hours' or '2 weeks' "
            f"(minutes, hours, days or weeks), not {value!r}."
        )
    if period.ago and op is Operator.IN_THE_LAST:
        return f"write 'in the last {period}' without 'ago'."
    return None


def _check_reference(
    path: Path_,
    ref: SegmentRef,
    dataset: str,
    segment: str | None,
    catalog: Mapping[str, SegmentInfo],
) -> list[Problem]:
    where = format_path(path)
    name = ref.segment
    if segment is not None and name == segment:
        return [Problem(where, f"segment {name!r} cannot include itself.")]
    target = catalog.get(name)
    if target is None:
        known = sorted(s.name for s in catalog.values() if s.dataset == dataset)
        hint = _segment_hint(name, known)
        return [Problem(where, f"there is no segment named {name!r}; {hint}")]
    if target.dataset != dataset:
        return [
            Problem(
                where,
                f"segment {name!r} is over dataset {target.dataset!r}, not {dataset!r}; "
                "a segment can only use segments of its own dataset.",
            )
        ]
    if segment is not None:
        chain = _path_back(name, segment, catalog)
        if chain is not None:
            loop = " -> ".join([segment, *chain])
            return [
                Problem(
                    where,
                    f"segment {name!r} leads back to {segment!r} ({loop}); "
                    "a segment cannot include itself, even through others.",
                )
            ]
    return []


def suggest(name: str, candidates: Sequence[str], *, noun: str = "fields") -> str:
    """The end of a sentence pointing at what ``name`` was probably meant to be."""
    near = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    if not near:
        lowered = {c.lower(): c for c in candidates}
        near = [lowered[m] for m in difflib.get_close_matches(name.lower(), list(lowered), n=3)]
    if near:
        return f"did you mean {' or '.join(near)}?"
    shown = ", ".join(sorted(candidates)[:8])
    return f"{noun} are {shown}{', ...' if len(candidates) > 8 else '.'}"


def _segment_hint(name: str, known: Sequence[str]) -> str:
    if not known:
        return "this dataset has no segments yet; create that segment first."
    return suggest(name, known, noun="its dataset's segments")


def _path_back(start: str, goal: str, catalog: Mapping[str, SegmentInfo]) -> list[str] | None:
    """The chain of references from ``start`` to ``goal`` (both included), if one exists."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        name, chain = stack.pop()
        if name == goal:
            return chain
        if name in seen:
            continue
        seen.add(name)
        info = catalog.get(name)
        if info is None:
            continue
        for ref in reversed(info.references):
            stack.append((ref, [*chain, ref]))
    return None
