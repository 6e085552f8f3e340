"""The unification rules language: common fields, match rules, survivorship, limits.

A rules document (YAML or JSON, read with the same bounds as segment rules) says

- ``fields``: the common fields and what each holds (``email``, ``phone``, ``maid``:
  identifiers normalized and hashed as Snapchat would; ``text``: compared lower case with
  spaces collapsed; ``code``: compared upper case without spaces; ``value``: kept as is);
- ``sources``: per dataset, which of its columns holds each common field (a column named
  like the field is used when none is given) and ``updated_at``, the column that says how
  recent a record is;
- ``match``: the rules that make two records one person, in priority order: a field name,
  a list of fields (all must be equal: a conjunction) or ``{name, fields}``;
- ``survivorship``: per field, how the unified value is chosen (``most_recent``,
  ``source_priority``, ``most_frequent``, ``all_values``);
- ``default_country`` for phones without a country code, and ``limits``.

This module checks the document's shape only; the service checks it against the
datasets' columns. docs/unification.md is the user's description of the language.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from audiencesync.errors import UserInputError, about
from audiencesync.identifiers import check_default_country
from audiencesync.segments.rules import MAX_RULES_BYTES, load_document
from audiencesync.types import IdentifierType

#: Columns every unified dataset has; common fields may not use these names.
UNIFIED_ID = "unified_id"
RECORD_COUNT = "record_count"
SOURCE_DATASETS = "source_datasets"
RESERVED_FIELDS = frozenset({UNIFIED_ID, RECORD_COUNT, SOURCE_DATASETS})

MAX_FIELDS = 50
MAX_SOURCES = 20
MAX_MATCH_RULES = 20
MAX_FIELDS_PER_RULE = 5
#: A key (an email, a phone, a conjunction) shared by more records than this is refused.
DEFAULT_MAX_RECORDS_PER_KEY = 20
#: A connected cluster of more records than this is not merged (its records stay apart).
DEFAULT_MAX_CLUSTER_SIZE = 1000

_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class FieldKind(StrEnum):
    """What a common field holds, which decides how it is normalized for matching."""

    EMAIL = "email"
    PHONE = "phone"
    MAID = "maid"
    TEXT = "text"
    CODE = "code"
    VALUE = "value"

    @property
    def identifier(self) -> IdentifierType | None:
        """The identifier type of an email, phone or maid field (None otherwise)."""
        return IdentifierType(self.value) if self.value in set(IdentifierType) else None


class Survivorship(StrEnum):
    """How the unified profile's value of a field is chosen when sources disagree."""

    MOST_RECENT = "most_recent"
    SOURCE_PRIORITY = "source_priority"
    MOST_FREQUENT = "most_frequent"
    ALL_VALUES = "all_values"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceMapping(_Model):
    """One source dataset: its columns for the common fields, and its recency column."""

    fields: dict[str, str] = Field(default_factory=dict)
    updated_at: str | None = None


class MatchRule(_Model):
    """Records whose normalized values of every field in ``fields`` are equal match."""

    name: str
    fields: tuple[str, ...] = Field(min_length=1, max_length=MAX_FIELDS_PER_RULE)


class Limits(_Model):
    max_records_per_key: int = Field(default=DEFAULT_MAX_RECORDS_PER_KEY, ge=2, le=1_000_000)
    max_cluster_size: int = Field(default=DEFAULT_MAX_CLUSTER_SIZE, ge=2, le=10_000_000)


class UnificationRules(_Model):
    """A parsed, shape-checked rules document."""

    fields: dict[str, FieldKind] = Field(min_length=1, max_length=MAX_FIELDS)
    sources: dict[str, SourceMapping] = Field(default_factory=dict, max_length=MAX_SOURCES)
    match: tuple[MatchRule, ...] = Field(min_length=1, max_length=MAX_MATCH_RULES)
    survivorship: dict[str, Survivorship] = Field(default_factory=dict)
    default_country: str | None = None
    limits: Limits = Field(default_factory=Limits)

    @field_validator("fields", mode="before")
    @classmethod
    def _field_kinds(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: v.strip().lower() if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("survivorship", mode="before")
    @classmethod
    def _survivorship_spelling(cls, value: object) -> object:
        if isinstance(value, dict):
            return {
                k: v.strip().lower().replace(" ", "_").replace("-", "_")
                if isinstance(v, str)
                else v
                for k, v in value.items()
            }
        return value

    @field_validator("match", mode="before")
    @classmethod
    def _match_forms(cls, value: object) -> object:
        if not isinstance(value, list | tuple):
            return value
        rules: list[object] = []
        for item in value:
            if isinstance(item, str):
                rules.append({"name": item, "fields": [item]})
            elif isinstance(item, list | tuple):
                rules.append({"name": "+".join(map(str, item)), "fields": list(item)})
            elif isinstance(item, dict) and "fields" in item and "name" not in item:
                fields = item["fields"]
                joined = "+".join(map(str, fields)) if isinstance(fields, list) else str(fields)
                rules.append({**item, "name": joined})
            else:
                rules.append(item)
        return rules

    @field_validator("default_country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return check_default_country(value)
        except UserInputError as error:
            raise ValueError(error.message) from None

    @model_validator(mode="after")
    def _consistent(self) -> UnificationRules:
        for name in self.fields:
            if not _FIELD_NAME.match(name) or name in RESERVED_FIELDS:
                raise ValueError(
                    f"{name[:80]!r} cannot name a common field: use lower-case letters, "
                    "digits and '_' starting with a letter, and none of "
                    f"{', '.join(sorted(RESERVED_FIELDS))}"
                )
        seen: set[str] = set()
        for rule in self.match:
            if rule.name in seen:
                raise ValueError(f"two match rules are named {rule.name!r}: name them apart")
            seen.add(rule.name)
            if len(set(rule.fields)) != len(rule.fields):
                raise ValueError(
                    f"match rule {rule.name!r} names a field twice: list each field once"
                )
            for field in rule.fields:
                if field not in self.fields:
                    raise ValueError(
                        f"match rule {rule.name!r} uses {field!r}, which is not a common "
                        "field: list it under 'fields'"
                    )
                if self.fields[field] is FieldKind.VALUE:
                    raise ValueError(
                        f"match rule {rule.name!r} uses {field!r}, a 'value' field that is "
                        "not normalized: give it the type email, phone, maid, text or code"
                    )
        for field in self.survivorship:
            if field not in self.fields:
                raise ValueError(
                    f"survivorship names {field!r}, which is not a common field: list it "
                    "under 'fields'"
                )
        for dataset, mapping in self.sources.items():
            for field in mapping.fields:
                if field not in self.fields:
                    raise ValueError(
                        f"source {dataset!r} maps {field!r}, which is not a common field: "
                        "list it under 'fields'"
                    )
        return self

    def survivorship_of(self, field: str) -> Survivorship:
        """The field's survivorship: as written, else all_values for identifiers and
        source_priority for the rest."""
        chosen = self.survivorship.get(field)
        if chosen is not None:
            return chosen
        if self.fields[field].identifier is not None:
            return Survivorship.ALL_VALUES
        return Survivorship.SOURCE_PRIORITY

    def mapping_of(self, dataset: str, columns: list[str]) -> dict[str, str]:
        """Common field -> column of ``dataset`` (explicit, else a column named like the
        field); fields the source lacks are left out."""
        explicit = self.sources.get(dataset, SourceMapping()).fields
        found: dict[str, str] = {}
        for field in self.fields:
            if field in explicit:
                found[field] = explicit[field]
            elif field in columns:
                found[field] = field
        return found


def _problem(error: ValidationError) -> str:
    lines = []
    for detail in error.errors()[:10]:
        where = ".".join(str(p) for p in detail["loc"]) or "the document"
        message = str(detail["msg"]).removeprefix("Value error, ")
        if detail["type"] == "extra_forbidden":
            message = "is not part of the rules language (see docs/unification.md)"
        elif detail["type"] == "enum":
            message = f"{str(detail.get('input'))[:60]!r}: {message}"
        lines.append(f"{where}: {message}")
    return "; ".join(lines)


def parse_unification_rules(data: object, *, source: str = "the rules") -> UnificationRules:
    """The rules from parsed YAML/JSON data; UserInputError naming each problem."""
    if not isinstance(data, dict):
        raise UserInputError(
            f"{source}: write a map with 'fields', 'match' and optionally 'sources', "
            "'survivorship', 'default_country' and 'limits' (see docs/unification.md)."
        )
    try:
        return UnificationRules.model_validate(data)
    except ValidationError as error:
        raise UserInputError(f"{source}: {_problem(error)}.") from None


def load_unification_text(text: str, *, source: str = "the rules text") -> UnificationRules:
    """Rules from YAML or JSON text, bounded as segment rules are; a UserInputError on
    field ``rules`` says what is wrong with them."""
    with about("rules"):
        return parse_unification_rules(load_document(text, source=source), source=source)


def load_unification_file(path: Path) -> UnificationRules:
    """Rules from a YAML or JSON file; UserInputError when it cannot be read."""
    if not path.is_file():
        raise UserInputError(f"the rules file {path} does not exist: check the path.")
    if path.stat().st_size > MAX_RULES_BYTES:
        raise UserInputError(
            f"{path.name} is larger than the {MAX_RULES_BYTES:,} bytes a rules file may take."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserInputError(f"{path.name} is not UTF-8 text: save it as UTF-8.") from None
    except OSError as error:
        raise UserInputError(f"{path} cannot be read ({error.strerror}).") from None
    return load_unification_text(text, source=path.name)


def dump_unification_rules(rules: UnificationRules) -> dict[str, Any]:
    """The JSON form stored in the control database."""
    dumped: dict[str, Any] = rules.model_dump(mode="json")
    return dumped
