"""The rule builder: form rows of field / operator / value in AND/OR groups, and back.

The builder is a tree of :class:`Row`; the form carries it as fields named by path
(``r``, ``r.0``, ``r.0.1``; ``r.0.field``, ``r.0.op``...). Buttons add or remove rows on
the server, so the builder works without JavaScript. A finished tree becomes the same
rule dictionary a YAML file holds and goes through ``parse_rules`` like any other rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from audiencesync.errors import UserInputError
from audiencesync.segments.fields import FieldKind, field_type
from audiencesync.segments.rules import (
    LIST_OPERATORS,
    MAX_RULES_DEPTH,
    NULL_OPERATORS,
    RELATIVE_OPERATORS,
    AllGroup,
    AnyGroup,
    Condition,
    NotGroup,
    Operator,
    RuleNode,
    SegmentRef,
    parse_rules,
)

ROOT = "r"
OPERATORS = [op.value for op in Operator]
#: How many digits a row's index may have (no form holds 10,000 rows of one group).
MAX_INDEX_DIGITS = 4
#: How deep builder rows may nest (``r.0.0`` is 2): in the rule's data each group is a
#: map holding a list, so a condition at depth d is a map at level 2d + 1 and its list of
#: values one deeper; any deeper row could never pass the rules' own bound.
MAX_BUILDER_DEPTH = (MAX_RULES_DEPTH - 2) // 2
_GONE = "that row of the rule builder is gone: reload the page."


@dataclass
class Row:
    """One row of the builder: a condition, a segment reference, or a group of rows."""

    kind: str = "condition"
    negate: bool = False
    field: str = ""
    op: str = "="
    value: str = ""
    segment: str = ""
    join: str = "all"
    rows: list[Row] = dataclasses.field(default_factory=list)


def empty() -> Row:
    """A new builder: one AND group with one empty condition."""
    return Row(kind="group", rows=[Row()])


def _index(step: str) -> int:
    """A row's index in its group: ASCII digits only (``str.isdigit`` takes ``²``,
    which ``int`` refuses), and short (``int`` refuses thousands of digits)."""
    if not (0 < len(step) <= MAX_INDEX_DIGITS and step.isascii() and step.isdigit()):
        raise UserInputError(_GONE)
    return int(step)


def _steps(path: str) -> list[int]:
    """The indexes of the row at ``path`` (``r.0.2``: [0, 2]), at most MAX_BUILDER_DEPTH."""
    if path == ROOT:
        return []
    if not path.startswith(ROOT + "."):
        raise UserInputError(_GONE)
    steps = path[len(ROOT) + 1 :].split(".")
    if len(steps) > MAX_BUILDER_DEPTH:
        raise UserInputError(
            f"the rule builder nests deeper than {MAX_BUILDER_DEPTH} groups: flatten the "
            "rule, or split it into segments that refer to each other."
        )
    return [_index(step) for step in steps]


def _children(values: Mapping[str, str], path: str) -> list[str]:
    """The paths of the rows directly inside the group at ``path``, in order (a row is
    there when its ``.kind`` field is: ``r.0.kind`` and ``r.0.1.kind`` both name ``r.0``)."""
    prefix = path + "."
    indexes = {
        _index(key[len(prefix) :].partition(".")[0])
        for key in values
        if key.startswith(prefix) and key.endswith(".kind") and key != prefix + "kind"
    }
    return [f"{path}.{i}" for i in sorted(indexes)]


def from_form(values: Mapping[str, str], path: str = ROOT) -> Row:
    """The tree the form's fields describe (missing fields read as empty).

    Raises UserInputError when a row's name is not one the form gives (``r.0.1``), or
    when rows nest deeper than MAX_BUILDER_DEPTH.
    """
    _steps(path)
    row = Row(
        kind=values.get(f"{path}.kind", "group" if path == ROOT else "condition"),
        negate=values.get(f"{path}.not", "") in ("on", "true", "1"),
        field=values.get(f"{path}.field", ""),
        op=values.get(f"{path}.op", "="),
        value=values.get(f"{path}.value", ""),
        segment=values.get(f"{path}.segment", ""),
        join="any" if values.get(f"{path}.join") == "any" else "all",
    )
    if row.kind == "group":
        row.rows = [from_form(values, child) for child in _children(values, path)]
    return row


def _find(root: Row, path: str) -> tuple[Row | None, Row]:
    """(parent, row) at ``path``."""
    parent: Row | None = None
    row = root
    for index in _steps(path):
        if index >= len(row.rows):
            raise UserInputError(_GONE)
        parent, row = row, row.rows[index]
    return parent, row


def apply(root: Row, action: str) -> Row:
    """Apply a builder button (``add-condition:r.1``, ``remove:r.0``...) to the tree.

    Raises UserInputError when the row is gone or a new group would nest too deep.
    """
    verb, _, path = action.partition(":")
    if verb.startswith("add-"):
        # The new row, and the condition a new group starts with, must fit the bound.
        _steps(path + ".0" * (2 if verb == "add-group" else 1))
    parent, row = _find(root, path)
    if verb == "remove" and parent is not None:
        parent.rows.remove(row)
    elif verb.startswith("add-") and row.kind == "group":
        kind = verb.removeprefix("add-")
        if kind == "group":
            row.rows.append(Row(kind="group", join="any", rows=[Row()]))
        elif kind in ("condition", "segment"):
            row.rows.append(Row(kind=kind))
    return root


def _typed(raw: str, kind: FieldKind | None) -> Any:
    text = raw.strip()
    if kind in (FieldKind.INTEGER, FieldKind.FLOAT, FieldKind.DECIMAL):
        for number in (int, float):
            try:
                return number(text)
            except ValueError:
                continue
    if kind is FieldKind.BOOLEAN and text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def _value(row: Row, kinds: Mapping[str, FieldKind]) -> Any:
    op = Operator(row.op) if row.op in OPERATORS else None
    kind = kinds.get(row.field)
    if op in NULL_OPERATORS:
        return None
    if op in RELATIVE_OPERATORS:
        return row.value.strip()
    if op in LIST_OPERATORS:
        separator = " and " if op is Operator.BETWEEN and "," not in row.value else ","
        return [_typed(part, kind) for part in row.value.split(separator) if part.strip()]
    return _typed(row.value, kind)


def _data(row: Row, kinds: Mapping[str, FieldKind]) -> dict[str, Any]:
    node: dict[str, Any]
    if row.kind == "group":
        node = {row.join: [_data(child, kinds) for child in row.rows]}
    elif row.kind == "segment":
        node = {"segment": row.segment}
    else:
        node = {"field": row.field, "op": row.op}
        value = _value(row, kinds)
        if value is not None:
            node["value"] = value
    return {"not": node} if row.negate else node


def to_rule(root: Row, columns: Mapping[str, str]) -> RuleNode:
    """The rule the builder describes; ``columns`` (name to type) types the values.

    Raises UserInputError listing what is missing or malformed.
    """
    if root.kind == "group" and not root.rows:
        raise UserInputError("the rule builder is empty: add a condition or a segment.")
    kinds = {name: field_type(type_name).kind for name, type_name in columns.items()}
    data = _data(root, kinds)
    if not root.negate and root.kind == "group" and len(root.rows) == 1:
        data = _data(root.rows[0], kinds)
    return parse_rules(data)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def from_rule(node: RuleNode) -> Row:
    """The builder rows of a saved rule (any rule has a builder form)."""
    row = _row(node)
    if row.kind != "group" or row.negate:
        return Row(kind="group", rows=[row])
    return row


def _row(node: RuleNode) -> Row:
    match node:
        case NotGroup():
            inner = _row(node.not_)
            inner.negate = not inner.negate
            return inner
        case AllGroup():
            return Row(kind="group", join="all", rows=[_row(c) for c in node.all])
        case AnyGroup():
            return Row(kind="group", join="any", rows=[_row(c) for c in node.any])
        case SegmentRef():
            return Row(kind="segment", segment=node.segment)
        case Condition():
            value = node.value
            text = ", ".join(_text(v) for v in value) if isinstance(value, list) else _text(value)
            return Row(kind="condition", field=node.field, op=node.op.value, value=text)
    raise TypeError(node)  # pragma: no cover
