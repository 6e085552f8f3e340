"""What a profile field holds, which operators apply to it, and how values are read.

Field types come from the dataset's columns as DuckDB type names (``VARCHAR``,
``BIGINT``, ``DECIMAL(10,2)``, ``TIMESTAMP WITH TIME ZONE``...), the same names linked
tables are described with, so one table of rules serves every engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum

import ibis.expr.datatypes as dt
from ibis.backends.sql.datatypes import DuckDBType

from audiencesync.segments.rules import NULL_OPERATORS, Operator


class FieldKind(StrEnum):
    """The families of column types rules know how to compare."""

    TEXT = "text"
    INTEGER = "integer"
    DECIMAL = "decimal"
    FLOAT = "float"
    BOOLEAN = "boolean"
    DATE = "date"
    TIMESTAMP = "timestamp"
    OTHER = "other"


#: How a message names what a field holds ("field 'age', which holds numbers").
KIND_WORDS = {
    FieldKind.TEXT: "text",
    FieldKind.INTEGER: "numbers",
    FieldKind.DECIMAL: "numbers",
    FieldKind.FLOAT: "numbers",
    FieldKind.BOOLEAN: "true/false values",
    FieldKind.DATE: "dates",
    FieldKind.TIMESTAMP: "dates and times",
    FieldKind.OTHER: "values rules cannot compare",
}

_COMPARE = frozenset({Operator.LT, Operator.LE, Operator.GT, Operator.GE, Operator.BETWEEN})
_EQUALITY = frozenset({Operator.EQ, Operator.NE})
_MEMBERSHIP = frozenset({Operator.IN, Operator.NOT_IN})
_TEXT_MATCH = frozenset({Operator.CONTAINS, Operator.STARTS_WITH, Operator.ENDS_WITH})
_RELATIVE = frozenset({Operator.IN_THE_LAST, Operator.BEFORE})
_NUMBER_OPS = NULL_OPERATORS | _EQUALITY | _COMPARE | _MEMBERSHIP

# Ordering operators are left out for text on purpose: engines sort text by different
# collations, so the same segment would get different members on DuckDB and PostgreSQL.
OPERATORS: dict[FieldKind, frozenset[Operator]] = {
    FieldKind.TEXT: NULL_OPERATORS | _EQUALITY | _MEMBERSHIP | _TEXT_MATCH,
    FieldKind.INTEGER: _NUMBER_OPS,
    FieldKind.DECIMAL: _NUMBER_OPS,
    FieldKind.FLOAT: _NUMBER_OPS,
    FieldKind.BOOLEAN: NULL_OPERATORS | _EQUALITY,
    FieldKind.DATE: NULL_OPERATORS | _EQUALITY | _COMPARE | _MEMBERSHIP | _RELATIVE,
    FieldKind.TIMESTAMP: NULL_OPERATORS | _EQUALITY | _COMPARE | _RELATIVE,
    FieldKind.OTHER: NULL_OPERATORS,
}


@dataclass(frozen=True)
class FieldType:
    """A column's type as rules see it: its family and its Ibis type."""

    kind: FieldKind
    dtype: dt.DataType

    @property
    def words(self) -> str:
        return KIND_WORDS[self.kind]

    @property
    def has_timezone(self) -> bool:
        return isinstance(self.dtype, dt.Timestamp) and self.dtype.timezone is not None

    def allows(self, op: Operator) -> bool:
        return op in OPERATORS[self.kind]

    def allowed_operators(self) -> list[str]:
        return [o.value for o in Operator if o in OPERATORS[self.kind]]


def kind_of(dtype: dt.DataType) -> FieldKind:
    """The family of an Ibis type."""
    if dtype.is_string():
        return FieldKind.TEXT
    if dtype.is_boolean():
        return FieldKind.BOOLEAN
    if dtype.is_integer():
        return FieldKind.INTEGER
    if dtype.is_decimal():
        return FieldKind.DECIMAL
    if dtype.is_floating():
        return FieldKind.FLOAT
    if dtype.is_date():
        return FieldKind.DATE
    if dtype.is_timestamp():
        return FieldKind.TIMESTAMP
    return FieldKind.OTHER


def field_type(type_name: str) -> FieldType:
    """The FieldType of a DuckDB type name; unknown names are OTHER."""
    try:
        dtype = DuckDBType.from_string(type_name)
    except Exception:  # noqa: BLE001 (sqlglot raises several kinds on names it cannot parse)
        return FieldType(FieldKind.OTHER, dt.unknown)
    return FieldType(kind_of(dtype), dtype)


# --- values --------------------------------------------------------------------------

Value = str | int | float | Decimal | bool | date | datetime


class BadValueError(ValueError):
    """A value that cannot be read as the field's type; ``str()`` ends a sentence."""


def read_value(field: FieldType, raw: object) -> Value:
    """``raw`` (from YAML/JSON) as a value of the field's type, or BadValueError."""
    if raw is None:
        raise BadValueError("is missing")
    if isinstance(raw, list | dict):
        raise BadValueError(f"{raw!r} is a list, where one value is expected")
    match field.kind:
        case FieldKind.TEXT:
            if isinstance(raw, bool):
                raise BadValueError(f"{raw!r} is true/false, not text (put it in quotes)")
            return str(raw)
        case FieldKind.INTEGER | FieldKind.FLOAT:
            return _number(raw)
        case FieldKind.DECIMAL:
            return Decimal(str(_number(raw)))
        case FieldKind.BOOLEAN:
            return _boolean(raw)
        case FieldKind.DATE:
            return _date(raw)
        case FieldKind.TIMESTAMP:
            return _timestamp(raw, aware=field.has_timezone)
        case _:
            raise BadValueError(f"{raw!r} cannot be compared with {field.words}")


def _number(raw: object) -> int | float:
    if isinstance(raw, bool):
        raise BadValueError(f"{raw!r} is true/false, not a number")
    if isinstance(raw, int | float):
        return raw
    text = str(raw).strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
        Decimal(text)
    except (ValueError, InvalidOperation):
        raise BadValueError(f"{raw!r} is not a number") from None
    return number


def _boolean(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    raise BadValueError(f"{raw!r} is not true or false")


def _date(raw: object) -> date:
    try:
        return date.fromisoformat(str(raw).strip())
    except ValueError:
        raise BadValueError(f"{raw!r} is not a date (write it as YYYY-MM-DD)") from None


def _timestamp(raw: object, *, aware: bool) -> datetime:
    try:
        value = datetime.fromisoformat(str(raw).strip())
    except ValueError:
        raise BadValueError(
            f"{raw!r} is not a date and time (write it as YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS)"
        ) from None
    return as_column_time(value, aware=aware)


def as_column_time(value: datetime, *, aware: bool) -> datetime:
    """A time as a column stores it: aware UTC, or naive UTC for columns without a zone."""
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return utc if aware else utc.replace(tzinfo=None)
