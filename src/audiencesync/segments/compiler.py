"""Compiling rules to Ibis boolean expressions, so one rule runs on any Ibis engine.

Semantics every engine shares:

- A condition on a missing (null) value is false, never unknown: ``country != 'US'``
  does not match profiles without a country, and ``not`` is an exact complement, so
  ``all: [{segment: a}, {not: {segment: b}}]`` is exactly a minus b. Use ``is null`` to
  select missing values.
- ``contains``, ``starts with`` and ``ends with`` ignore case; ``=`` and ``in`` do not.
- ``in the last N`` means from now minus N up to now; ``before N ago`` means earlier than
  now minus N. On a date field both compare with the calendar date of that instant.
  Timestamps without a time zone are taken as UTC. ``now`` is given by the caller, so
  tests (and a run that must see one instant) are deterministic.
- A reference ``{segment: NAME}`` is replaced by that segment's rules (same dataset).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import ibis
import ibis.expr.types as ir

from audiencesync.errors import UserInputError
from audiencesync.segments.fields import FieldKind, FieldType, as_column_time, read_value
from audiencesync.segments.rules import (
    AllGroup,
    AnyGroup,
    Condition,
    NotGroup,
    Operator,
    Path_,
    RuleNode,
    SegmentRef,
    children,
    parse_period,
)

#: The rules of a referenced segment, by name.
Resolver = Callable[[str], RuleNode]


class RuleCompiler:
    """Turns rules into predicates over one Ibis table."""

    def __init__(
        self,
        table: ir.Table,
        types: Mapping[str, FieldType],
        *,
        now: datetime,
        resolve: Resolver,
    ) -> None:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self.table = table
        self.types = types
        self.now = now
        self.resolve = resolve

    def predicate(self, node: RuleNode, _within: tuple[str, ...] = ()) -> ir.BooleanValue:
        """A boolean expression, never null, true for the profiles ``node`` selects."""
        match node:
            case Condition():
                return self._condition(node)
            case AllGroup():
                return _balanced(operator.and_, [self.predicate(n, _within) for n in node.all])
            case AnyGroup():
                return _balanced(operator.or_, [self.predicate(n, _within) for n in node.any])
            case NotGroup():
                return ~self.predicate(node.not_, _within)
            case SegmentRef():
                if node.segment in _within:
                    loop = " -> ".join([*_within, node.segment])
                    raise UserInputError(
                        f"segments refer to each other in a loop ({loop}): "
                        "update one of them to break it."
                    )
                return self.predicate(self.resolve(node.segment), (*_within, node.segment))
        raise TypeError(f"not a rule node: {node!r}")  # pragma: no cover

    def predicates_by_path(
        self, node: RuleNode, path: Path_ = ()
    ) -> list[tuple[Path_, RuleNode, ir.BooleanValue]]:
        """Every node of the tree (references as leaves) with its path and predicate."""
        found = [(path, node, self.predicate(node))]
        for step, child in children(node):
            found.extend(self.predicates_by_path(child, (*path, step)))
        return found

    def _condition(self, condition: Condition) -> ir.BooleanValue:
        column: Any = self.table[condition.field]
        ftype = self.types[condition.field]
        op = condition.op
        if op is Operator.IS_NULL:
            return column.isnull()
        if op is Operator.IS_NOT_NULL:
            return column.notnull()
        test = self._test(column, ftype, op, condition.value)
        # Guard with IS NOT NULL so the result is never null: NOT then complements.
        guarded: ir.BooleanValue = column.notnull() & test
        return guarded

    def _test(self, column: Any, ftype: FieldType, op: Operator, raw: Any) -> Any:
        def lit(value: Any) -> Any:
            return self._literal(ftype, read_value(ftype, value))

        match op:
            case Operator.EQ:
                return column == lit(raw)
            case Operator.NE:
                return column != lit(raw)
            case Operator.LT:
                return column < lit(raw)
            case Operator.LE:
                return column <= lit(raw)
            case Operator.GT:
                return column > lit(raw)
            case Operator.GE:
                return column >= lit(raw)
            case Operator.BETWEEN:
                return column.between(lit(raw[0]), lit(raw[1]))
            case Operator.IN:
                return column.isin([lit(v) for v in raw])
            case Operator.NOT_IN:
                return ~column.isin([lit(v) for v in raw])
            case Operator.CONTAINS:
                return column.lower().contains(str(raw).lower())
            case Operator.STARTS_WITH:
                return column.lower().startswith(str(raw).lower())
            case Operator.ENDS_WITH:
                return column.lower().endswith(str(raw).lower())
            case Operator.IN_THE_LAST:
                since, until = self._window(ftype, raw)
                return (column >= since) & (column <= until)
            case Operator.BEFORE:
                cutoff, _ = self._window(ftype, raw)
                return column < cutoff
        raise TypeError(f"no compilation for {op!r}")  # pragma: no cover

    def _window(self, ftype: FieldType, raw: Any) -> tuple[Any, Any]:
        period = parse_period(raw)
        if period is None:  # validation refuses these; a stored rule may predate a change
            raise UserInputError(f"{raw!r} is not a period such as '90 days'.")
        start = self.now - period.delta
        if ftype.kind is FieldKind.DATE:
            return self._literal(ftype, start.date()), self._literal(ftype, self.now.date())
        aware = ftype.has_timezone
        return (
            self._literal(ftype, as_column_time(start, aware=aware)),
            self._literal(ftype, as_column_time(self.now, aware=aware)),
        )

    @staticmethod
    def _literal(ftype: FieldType, value: Any) -> Any:
        if ftype.kind in (FieldKind.DATE, FieldKind.TIMESTAMP):
            return ibis.literal(value, type=ftype.dtype.copy(nullable=True))
        return ibis.literal(value)


def _balanced(
    combine: Callable[[Any, Any], ir.BooleanValue], terms: list[ir.BooleanValue]
) -> ir.BooleanValue:
    """``terms`` joined pairwise, level by level: a tree log2(n) deep, not n.

    A left-deep chain of 1,000 ORs made Ibis (and the SQL compilers under it) recurse
    past Python's stack limit: count, preview and sql answered 500.
    """
    while len(terms) > 1:
        paired = [combine(a, b) for a, b in zip(terms[::2], terms[1::2], strict=False)]
        terms = paired + terms[-1:] if len(terms) % 2 else paired
    return terms[0]
