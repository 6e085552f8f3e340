"""The rule model: one algebra for conditions and segments alike.

A rule is a node: a condition ``{field, op, value}``, a group ``{all: [...]}`` (AND),
``{any: [...]}`` (OR) or ``{not: node}``, or a reference ``{segment: NAME}``. Union of
segments is ``any`` of references, intersection is ``all``, difference is
``all: [{segment: a}, {not: {segment: b}}]``. Users write rules as YAML or JSON files;
the control database stores them as JSON (``dump_rules``); the UI validates against
``rules_json_schema()``.

This module checks the *shape* of a rule only; whether its fields, operators and values
fit a dataset is ``segments.validation``'s job.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from audiencesync.bounds import MAX_NESTING, holds_surrogate, nesting_depth
from audiencesync.errors import UserInputError

#: The largest rule document (YAML or JSON text) read, in bytes.
MAX_RULES_BYTES = 64 * 1024
#: How deep a rule's data may nest (each all/any group is two levels: a map and a list).
MAX_RULES_DEPTH = 64
#: The most conditions and segment references one rule may hold (an ``any`` of 1,000
#: values is better written as one ``in``); groups around them do not count.
MAX_RULE_CONDITIONS = 1000
#: The longest period ``in the last`` / ``before`` take, in days (100 years).
MAX_PERIOD_DAYS = 36_600
#: Whole numbers a rule may hold: what DuckDB and PostgreSQL compare as BIGINT.
INT64 = (-(2**63), 2**63 - 1)


class Operator(StrEnum):
    """A condition's operator, as users write it."""

    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    BETWEEN = "between"
    IN = "in"
    NOT_IN = "not in"
    CONTAINS = "contains"
    STARTS_WITH = "starts with"
    ENDS_WITH = "ends with"
    IS_NULL = "is null"
    IS_NOT_NULL = "is not null"
    IN_THE_LAST = "in the last"
    BEFORE = "before"


#: Other spellings users reach for, mapped to the operator they mean.
_OPERATOR_ALIASES = {
    "==": Operator.EQ,
    "eq": Operator.EQ,
    "equals": Operator.EQ,
    "<>": Operator.NE,
    "ne": Operator.NE,
    "lt": Operator.LT,
    "le": Operator.LE,
    "gt": Operator.GT,
    "ge": Operator.GE,
    "startswith": Operator.STARTS_WITH,
    "endswith": Operator.ENDS_WITH,
    "is empty": Operator.IS_NULL,
    "is not empty": Operator.IS_NOT_NULL,
}

#: Operators that take no value.
NULL_OPERATORS = frozenset({Operator.IS_NULL, Operator.IS_NOT_NULL})
#: Operators whose value is a list.
LIST_OPERATORS = frozenset({Operator.IN, Operator.NOT_IN, Operator.BETWEEN})
#: Operators whose value is a period relative to now.
RELATIVE_OPERATORS = frozenset({Operator.IN_THE_LAST, Operator.BEFORE})

Scalar = str | int | float | bool | None


def _normalize_operator(value: object) -> object:
    if not isinstance(value, str):
        return value
    spelled = " ".join(value.strip().lower().replace("_", " ").split())
    return _OPERATOR_ALIASES.get(spelled, spelled)


def _json_scalar(value: object) -> object:
    # YAML reads 2026-01-31 as a date: keep it as the ISO text the user wrote.
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def scalar_problem(value: object) -> str | None:
    """Why a rule cannot hold ``value`` (a NUL, a number no database compares), or None."""
    if isinstance(value, str) and "\x00" in value:
        return "holds a NUL character (\\u0000), which no database compares; remove it"
    if isinstance(value, str) and holds_surrogate(value):
        return (
            "holds a lone UTF-16 surrogate (\\ud800 to \\udfff), half of a character no "
            "database stores; write the whole character"
        )
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and not (INT64[0] <= value <= INT64[1])
    ):
        return (
            "is a whole number beyond what databases compare "
            f"(from {INT64[0]:,} to {INT64[1]:,}); use a smaller number"
        )
    if isinstance(value, float) and not math.isfinite(value):
        return "is not a finite number (NaN or infinity); use a number"
    return None


def _checked_scalar(value: object) -> object:
    problem = scalar_problem(value)
    if problem is not None:
        raise PydanticCustomError("bad_scalar", f"the value {_show(value)} {problem}.")
    return value


def _check_name(what: str, value: object) -> None:
    if isinstance(value, str) and "\x00" in value:
        raise PydanticCustomError(
            "bad_scalar", f"{what} holds a NUL character (\\u0000); remove it."
        )
    if isinstance(value, str) and holds_surrogate(value):
        raise PydanticCustomError(
            "bad_scalar",
            f"{what} holds a lone UTF-16 surrogate (\\ud800 to \\udfff); write whole characters.",
        )


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Condition(_Node):
    """``{field: F, op: OP, value: V}``: profiles whose field satisfies the operator."""

    field: str = Field(min_length=1, description="a column of the profile dataset")
    op: Operator = Field(description="the comparison")
    value: Scalar | list[Scalar] = Field(
        default=None,
        description="a value, a list for in / not in / between, a period such as "
        "'90 days' for in the last / before; none for is null / is not null",
    )

    @field_validator("op", mode="before")
    @classmethod
    def _spelling(cls, value: object) -> object:
        return _normalize_operator(value)

    @field_validator("value", mode="before")
    @classmethod
    def _dates_as_text(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            return [_checked_scalar(_json_scalar(v)) for v in value]
        return _checked_scalar(_json_scalar(value))

    @field_validator("field", mode="before")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        _check_name("the field name", value)
        return value


class AllGroup(_Node):
    """``{all: [nodes]}``: profiles matching every node (AND; intersect for segments)."""

    all: list[Node] = Field(min_length=1)


class AnyGroup(_Node):
    """``{any: [nodes]}``: profiles matching at least one node (OR; union for segments)."""

    any: list[Node] = Field(min_length=1)


class NotGroup(_Node):
    """``{not: node}``: profiles not matching the node."""

    not_: Node = Field(alias="not")


class SegmentRef(_Node):
    """``{segment: NAME}``: the members of another segment of the same dataset."""

    segment: str = Field(min_length=1)

    @field_validator("segment", mode="before")
    @classmethod
    def _whole_characters(cls, value: object) -> object:
        _check_name("the segment name", value)
        return value

    @field_validator("segment")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()


_TAGS: dict[type[_Node], str] = {
    Condition: "condition",
    AllGroup: "all",
    AnyGroup: "any",
    NotGroup: "not",
    SegmentRef: "segment",
}
_NODE_SHAPES = (
    "{field: F, op: OP, value: V}, {all: [...]}, {any: [...]}, {not: rule} or {segment: NAME}"
)


def _node_tag(value: Any) -> str | None:
    if isinstance(value, _Node):
        return _TAGS[type(value)]
    if not isinstance(value, dict):
        return None
    for key in ("all", "any", "not", "segment"):
        if key in value:
            return key
    if "field" in value or "op" in value:
        return "condition"
    return None


Node = Annotated[
    Union[  # noqa: UP007 (a `|` union cannot carry the per-member tags)
        Annotated[Condition, Tag("condition")],
        Annotated[AllGroup, Tag("all")],
        Annotated[AnyGroup, Tag("any")],
        Annotated[NotGroup, Tag("not")],
        Annotated[SegmentRef, Tag("segment")],
    ],
    Discriminator(
        _node_tag,
        custom_error_type="invalid_rule",
        custom_error_message="not a rule",
    ),
]
RuleNode = Condition | AllGroup | AnyGroup | NotGroup | SegmentRef

for _model in (AllGroup, AnyGroup, NotGroup):
    _model.model_rebuild()
_ADAPTER: TypeAdapter[RuleNode] = TypeAdapter(Node)


def rules_json_schema() -> dict[str, Any]:
    """The JSON Schema of a rule (one node, recursively), for editors and the web UI."""
    schema = _ADAPTER.json_schema(by_alias=True)
    schema["title"] = "audiencesync segment rule"
    schema["description"] = f"One rule: {_NODE_SHAPES}, nested to any depth."
    return schema


# --- paths ---------------------------------------------------------------------------

Path_ = tuple[str, ...]


def format_path(path: Path_) -> str:
    """``("any[0]", "all[1]")`` -> ``"any[0].all[1]"``; the root reads ``top``."""
    return ".".join(path) if path else "top"


def children(node: RuleNode) -> list[tuple[str, RuleNode]]:
    """The direct sub-rules of ``node`` with their path step."""
    match node:
        case AllGroup():
            return [(f"all[{i}]", child) for i, child in enumerate(node.all)]
        case AnyGroup():
            return [(f"any[{i}]", child) for i, child in enumerate(node.any)]
        case NotGroup():
            return [("not", node.not_)]
        case _:
            return []


def walk(node: RuleNode, path: Path_ = ()) -> Iterator[tuple[Path_, RuleNode]]:
    """Every node of the tree with its path, parents before children."""
    yield path, node
    for step, child in children(node):
        yield from walk(child, (*path, step))


def references(node: RuleNode) -> list[str]:
    """Names of the segments ``node`` refers to directly, in order, each once."""
    names: dict[str, None] = {}
    for _, sub in walk(node):
        if isinstance(sub, SegmentRef):
            names[sub.segment] = None
    return list(names)


# --- reading and writing ------------------------------------------------------------


def parse_rules(data: object) -> RuleNode:
    """A rule from parsed YAML/JSON data; UserInputError lists every shape problem."""
    if data is None:
        raise UserInputError(f"the rules are empty: write one rule, {_NODE_SHAPES}.")
    if _depth(data) > MAX_RULES_DEPTH:
        raise UserInputError(
            f"the rule nests deeper than {MAX_RULES_DEPTH} levels: flatten it (an 'all' "
            "inside an 'all' is one 'all'), or split it into segments that refer to each "
            "other."
        )
    # JSON rules (the API's ``rules``, stored rows) never passed the text cap: a 729 KB
    # rule of 120,000 values was stored, and each count took 18 s.
    size = _json_size(data)
    if size > MAX_RULES_BYTES:
        raise UserInputError(_too_big("the rules", size), field="rules")
    try:
        node = _ADAPTER.validate_python(data)
    except ValidationError as error:
        # A union reports one error per member type: keep the first per rule and key.
        first: dict[tuple[str, str | None], Problem] = {}
        for detail in error.errors():
            path, key = _locate(detail)
            first.setdefault((path, key), Problem(path, _shape_message(detail, key)))
        raise rules_error(list(first.values())) from None
    leaves = sum(1 for _, sub in walk(node) if isinstance(sub, Condition | SegmentRef))
    if leaves > MAX_RULE_CONDITIONS:
        raise UserInputError(
            f"the rule holds {leaves:,} conditions, more than the {MAX_RULE_CONDITIONS:,} a rule "
            "may hold: write many values of one field as one 'in' condition, or split the "
            "rule into segments that refer to each other.",
            field="rules",
        )
    return node


def _json_size(data: object) -> int:
    """The bytes of ``data`` as compact JSON, the size a rule document is measured by."""
    try:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError):  # keys JSON cannot write: the shape check says why
        return 0
    return len(text.encode("utf-8", "surrogatepass"))


def _too_big(source: str, size: int) -> str:
    return (
        f"{source}: {size:,} bytes is more than the {MAX_RULES_BYTES:,} a rule may take; "
        "split the rule into segments that refer to each other."
    )


def _depth(data: object) -> int:
    """How deep lists and maps nest in ``data``, without recursion (stops past the cap)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(data, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list | tuple):
            deepest = max(deepest, level)
            if deepest > MAX_RULES_DEPTH:
                return deepest
            values = item.values() if isinstance(item, dict) else item
            stack.extend((v, level + 1) for v in values)
    return deepest


def dump_rules(node: RuleNode) -> dict[str, Any]:
    """The JSON form of a rule, as stored in the control database."""
    dumped: dict[str, Any] = _ADAPTER.dump_python(
        node, mode="json", by_alias=True, exclude_defaults=True
    )
    return dumped


def rules_to_yaml(node: RuleNode) -> str:
    """A rule as YAML, the way a user would write it."""
    return yaml.safe_dump(dump_rules(node), sort_keys=False, allow_unicode=True)


class _RefusedError(Exception):
    """A rule document the bounded loader will not read (the reason is the message)."""


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases or anchors, and with a nesting cap.

    An alias bomb (anchors referring to anchors) expands to billions of nodes after a few
    lines, and ``a: &a [*a]`` is a cycle: refusing aliases removes both, and the cap
    stops a deep document before the (recursive) composer reaches Python's stack limit.
    """

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise _RefusedError("YAML aliases (*name) are not accepted; write the rule out in full")
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if getattr(event, "anchor", None) is not None:
            raise _RefusedError("YAML anchors (&name) are not accepted; write the rule out in full")
        self.depth += 1
        try:
            if self.depth > MAX_RULES_DEPTH:
                raise _RefusedError(
                    f"the rule nests deeper than {MAX_RULES_DEPTH} levels; flatten it, or "
                    "split it into segments that refer to each other"
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _load_yaml(text: str) -> object:
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_rules_text(text: str, *, source: str = "the rule text") -> RuleNode:
    """A rule from YAML or JSON text (JSON is read as JSON so its errors read right).

    Bounded: at most MAX_RULES_BYTES, nesting at most MAX_RULES_DEPTH deep, no YAML
    aliases or anchors, no NUL characters; each refusal is one sentence.
    """
    return parse_rules(load_document(text, source=source))


def load_document(text: str, *, source: str = "the rules") -> object:
    """The data of a YAML or JSON rules document, read within the bounds rules have.

    At most MAX_RULES_BYTES, nesting at most MAX_RULES_DEPTH deep, no YAML aliases or
    anchors, no NUL characters; each refusal is one UserInputError sentence. Shared by
    every rules file (segments, unifications).
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_RULES_BYTES:
        raise UserInputError(_too_big(source, size))
    if "\x00" in text:
        raise UserInputError(f"{source}: the text holds a NUL character (\\u0000); remove it.")
    if nesting_depth(text) > min(MAX_NESTING, MAX_RULES_DEPTH):
        raise UserInputError(
            f"{source}: the rule nests deeper than {MAX_RULES_DEPTH} levels; flatten it, or "
            "split it into segments that refer to each other."
        )
    stripped = text.lstrip()
    try:
        if stripped.startswith(("{", "[")) and source.lower().endswith(".json"):
            data = json.loads(text)
        else:
            data = _load_yaml(text)
    except _RefusedError as refused:
        raise UserInputError(f"{source}: {refused}.") from None
    except RecursionError:
        raise UserInputError(f"{source}: the rule nests too deeply; flatten it.") from None
    except json.JSONDecodeError as error:
        raise UserInputError(
            f"{source} is not valid JSON (line {error.lineno}, column {error.colno}: "
            f"{error.msg}): fix it and try again.",
            field="rules",
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(error, "problem", None) or "syntax error"
        raise UserInputError(
            f"{source} is not valid YAML{where}: {problem}; fix it and try again.",
            field="rules",
        ) from None
    except ValueError as error:  # int() of a 4,301-digit number, a date like 2026-02-30
        if "digits" in str(error):
            raise UserInputError(
                f"{source}: a number in the rule has more than {sys.get_int_max_str_digits():,} "
                "digits, more than any field holds; shorten it."
            ) from None
        raise UserInputError(
            f"{source}: a value cannot be read ({str(error).splitlines()[0][:120]}); fix it "
            "and retry."
        ) from None
    return data


def load_rules_file(path: Path) -> RuleNode:
    """A rule from a YAML (.yaml, .yml) or JSON (.json) file."""
    if not path.exists():
        raise UserInputError(f"the rules file {path} does not exist: check the path.")
    if path.is_dir():
        raise UserInputError(f"{path} is a folder: give the path of a YAML or JSON rules file.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserInputError(f"{path.name} is not UTF-8 text: save it as UTF-8.") from None
    except OSError as error:
        raise UserInputError(f"{path} cannot be read ({error.strerror}).") from None
    if not text.strip():
        raise UserInputError(f"{path.name} is empty: write one rule, {_NODE_SHAPES}.")
    return load_rules_text(text, source=path.name)


# --- problems -------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a rule, at a path such as ``any[0].all[1]``."""

    path: str
    message: str

    def __str__(self) -> str:
        where = "the top-level rule" if self.path == "top" else f"rule {self.path}"
        return f"{where}: {self.message}"


class RulesError(UserInputError):
    """Problems of a rule; ``paths`` are the rules at fault (``all[1]``, ``any[0].all[2]``,
    ``top``), so a rule builder can mark those rows."""

    def __init__(self, message: str, *, paths: tuple[str, ...]) -> None:
        super().__init__(message, field="rules")
        self.paths = paths


def rules_error(problems: list[Problem], *, subject: str | None = None) -> RulesError:
    """One RulesError listing every problem once, one per line.

    ``subject`` (such as "segment 'x' no longer fits dataset 'd'") opens the message.
    """
    unique = list(dict.fromkeys(problems))
    paths = tuple(dict.fromkeys(p.path for p in unique))
    if len(unique) == 1:
        return RulesError(f"{subject}: {unique[0]}" if subject else f"{unique[0]}", paths=paths)
    head = (
        f"{subject}; {len(unique)} problems"
        if subject
        else f"the rules have {len(unique)} problems"
    )
    lines = "\n".join(f"  - {p}" for p in unique)
    return RulesError(f"{head}:\n{lines}", paths=paths)


def _locate(error: ErrorDetails) -> tuple[str, str | None]:
    """The path of the rule an error is about, and the key within it (if any)."""
    loc = list(error["loc"])
    steps: list[str] = []
    key: str | None = None
    i = 0
    while i < len(loc):
        tag = str(loc[i])
        attr = loc[i + 1] if i + 1 < len(loc) else None
        if tag in ("all", "any"):
            if i + 2 < len(loc) and isinstance(loc[i + 2], int):
                steps.append(f"{tag}[{loc[i + 2]}]")
                i += 3
                continue
            key = tag
            break
        if tag == "not" and attr == "not":
            steps.append("not")
            i += 2
            continue
        key = None if attr is None else str(attr)
        break
    return format_path(tuple(steps)), key


def _shape_message(error: ErrorDetails, key: str | None) -> str:
    kind = error["type"]
    given = error.get("input")
    if kind == "bad_scalar":
        return str(error["msg"])
    if kind == "invalid_rule":
        return f"{_show(given)} is not a rule; write {_NODE_SHAPES}."
    if kind == "missing":
        return f"the condition has no {key!r}; write {{field: F, op: OP, value: V}}."
    if kind == "extra_forbidden":
        return f"unknown key {key!r}; a rule is one of {_NODE_SHAPES}."
    if kind == "enum" and key == "op":
        names = ", ".join(o.value for o in Operator)
        return f"{_show(given)} is not an operator; use one of {names}."
    if kind == "too_short" and key in ("all", "any"):
        return f"the {key!r} group is empty; list at least one rule in it."
    if kind == "list_type" and key in ("all", "any"):
        return f"{key!r} must hold a list of rules, such as {key}: [rule, rule]."
    if key == "value":
        return f"the value {_show(given)} is not a single value or a list of values."
    if key in ("field", "segment"):
        return f"{key!r} must be a name (text), not {_show(given)}."
    detail = error["msg"].rstrip(".")
    return f"{key!r}: {detail}." if key else f"{detail}."


def _show(value: object) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- periods for relative dates --------------------------------------------------------

_UNITS = {
    **dict.fromkeys(("minute", "minutes", "min", "mins"), "minutes"),
    **dict.fromkeys(("hour", "hours", "h"), "hours"),
    **dict.fromkeys(("day", "days", "d"), "days"),
    **dict.fromkeys(("week", "weeks", "w"), "weeks"),
}
_PERIOD = re.compile(r"^\s*([0-9]+)\s*([a-z]+)\s*(ago)?\s*$", re.IGNORECASE)
_DAYS_PER_UNIT = {"minutes": 1 / 1440, "hours": 1 / 24, "days": 1, "weeks": 7}


@dataclass(frozen=True)
class Period:
    """A span such as ``90 days``; ``ago`` records whether the user wrote it."""

    amount: int
    unit: str
    ago: bool = False

    @property
    def delta(self) -> timedelta:
        return timedelta(**{self.unit: self.amount})

    def __str__(self) -> str:
        unit = self.unit if self.amount != 1 else self.unit.removesuffix("s")
        return f"{self.amount} {unit}"


def parse_period(value: object) -> Period | None:
    """``"90 days"``, ``"12 hours"``, ``"2 weeks"``, ``"30 days ago"`` -> Period; else None.

    A period longer than MAX_PERIOD_DAYS raises UserInputError (one sentence).
    """
    if not isinstance(value, str):
        return None
    match = _PERIOD.match(value)
    if match is None:
        return None
    unit = _UNITS.get(match.group(2).lower())
    digits = match.group(1).lstrip("0")
    if unit is None or not digits:
        return None
    # Past the limit, "now minus the period" overflowed the calendar (a 500 on count).
    if len(digits) > 9 or int(digits) * _DAYS_PER_UNIT[unit] > MAX_PERIOD_DAYS:
        raise UserInputError(
            f"the period {value.strip()[:40]!r} is longer than {MAX_PERIOD_DAYS:,} days "
            "(100 years), the longest a rule may look back; use a shorter one.",
            field="rules",
        )
    return Period(int(digits), unit, ago=match.group(3) is not None)
