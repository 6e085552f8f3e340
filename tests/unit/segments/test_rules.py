"""The rule model: shapes, spellings, files, paths in messages, the JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audiencesync.errors import UserInputError
from audiencesync.segments.rules import (
    AllGroup,
    AnyGroup,
    Condition,
    NotGroup,
    Operator,
    Period,
    SegmentRef,
    dump_rules,
    load_rules_file,
    load_rules_text,
    parse_period,
    parse_rules,
    references,
    rules_json_schema,
    rules_to_yaml,
    walk,
)

ISSUE_EXAMPLE = """
any:
  - all:
      - {field: age, op: between, value: [30, 50]}
      - {field: country, op: in, value: [US, GB]}
  - all:
      - {field: last_order, op: in the last, value: 90 days}
      - not: {segment: churned}
"""


def test_the_issue_example_parses_to_the_tree_it_describes() -> None:
    node = load_rules_text(ISSUE_EXAMPLE)
    assert node == AnyGroup(
        any=[
            AllGroup(
                all=[
                    Condition(field="age", op=Operator.BETWEEN, value=[30, 50]),
                    Condition(field="country", op=Operator.IN, value=["US", "GB"]),
                ]
            ),
            AllGroup(
                all=[
                    Condition(field="last_order", op=Operator.IN_THE_LAST, value="90 days"),
                    NotGroup(not_=SegmentRef(segment="churned")),
                ]
            ),
        ]
    )
    assert references(node) == ["churned"]


def test_json_and_yaml_round_trip_through_the_stored_form() -> None:
    node = load_rules_text(ISSUE_EXAMPLE)
    stored = dump_rules(node)
    assert json.loads(json.dumps(stored)) == stored
    assert parse_rules(stored) == node
    assert load_rules_text(rules_to_yaml(node)) == node
    assert load_rules_text(json.dumps(stored), source="rules.json") == node


def test_null_operators_store_no_value() -> None:
    assert dump_rules(parse_rules({"field": "email", "op": "is null"})) == {
        "field": "email",
        "op": "is null",
    }


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("==", Operator.EQ),
        ("<>", Operator.NE),
        ("NOT IN", Operator.NOT_IN),
        ("starts_with", Operator.STARTS_WITH),
        ("In  The Last", Operator.IN_THE_LAST),
        ("is_not_null", Operator.IS_NOT_NULL),
        ("ge", Operator.GE),
    ],
)
def test_operators_accept_the_usual_spellings(written: str, meant: Operator) -> None:
    node = parse_rules({"field": "x", "op": written, "value": 1})
    assert isinstance(node, Condition)
    assert node.op is meant


def test_yaml_dates_are_kept_as_the_text_written() -> None:
    node = load_rules_text("{field: birthday, op: between, value: [1980-01-01, 1999-12-31]}")
    assert isinstance(node, Condition)
    assert node.value == ["1980-01-01", "1999-12-31"]


def test_segment_references_are_lower_cased() -> None:
    assert parse_rules({"segment": " Churned "}) == SegmentRef(segment="churned")


def test_walk_gives_every_node_with_its_path() -> None:
    paths = [".".join(p) for p, _ in walk(load_rules_text(ISSUE_EXAMPLE))]
    assert paths == [
        "",
        "any[0]",
        "any[0].all[0]",
        "any[0].all[1]",
        "any[1]",
        "any[1].all[0]",
        "any[1].all[1]",
        "any[1].all[1].not",
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {
                "any": [
                    {"all": [{"field": "a", "op": "="}, {"field": "b", "op": "equalz", "value": 1}]}
                ]
            },
            "rule any[0].all[1]: 'equalz' is not an operator; use one of =, !=, <, <=, >, >=, "
            "between, in, not in, contains, starts with, ends with, is null, is not null, "
            "in the last, before.",
        ),
        (
            {"all": [{"op": "=", "value": 1}]},
            "rule all[0]: the condition has no 'field'; write {field: F, op: OP, value: V}.",
        ),
        (
            {"all": []},
            "the top-level rule: the 'all' group is empty; list at least one rule in it.",
        ),
        (
            {"any": [{"not": {"feild": "age"}}]},
            'rule any[0].not: {"feild": "age"} is not a rule; write {field: F, op: OP, '
            "value: V}, {all: [...]}, {any: [...]}, {not: rule} or {segment: NAME}.",
        ),
        (
            {"all": [{"field": "a", "op": "=", "value": 1, "vaule": 2}]},
            "rule all[0]: unknown key 'vaule'; a rule is one of {field: F, op: OP, value: V}, "
            "{all: [...]}, {any: [...]}, {not: rule} or {segment: NAME}.",
        ),
        (
            {"any": "x"},
            "the top-level rule: 'any' must hold a list of rules, such as any: [rule, rule].",
        ),
        (
            {"all": [{"field": "a", "op": "in", "value": [[1]]}]},
            "rule all[0]: the value [[1]] is not a single value or a list of values.",
        ),
        (
            [{"field": "a", "op": "=", "value": 1}],
            'the top-level rule: [{"field": "a", "op": "=", "value": 1}] is not a rule; '
            "write {field: F, op: OP, value: V}, {all: [...]}, {any: [...]}, {not: rule} or "
            "{segment: NAME}.",
        ),
    ],
)
def test_shape_problems_name_the_path_and_say_what_to_write(data: object, message: str) -> None:
    with pytest.raises(UserInputError) as caught:
        parse_rules(data)
    assert caught.value.message == message


def test_several_shape_problems_are_listed_one_per_line() -> None:
    with pytest.raises(UserInputError) as caught:
        parse_rules({"all": [{"field": "a", "op": "nope"}, {"segment": 3}]})
    lines = caught.value.message.splitlines()
    assert lines[0] == "the rules have 2 problems:"
    assert lines[1].startswith("  - rule all[0]: 'nope' is not an operator")
    assert lines[2] == "  - rule all[1]: 'segment' must be a name (text), not 3."


def test_files_problems_are_one_sentence(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(UserInputError, match=r"nope.yaml does not exist: check the path\."):
        load_rules_file(missing)
    empty = tmp_path / "empty.yaml"
    empty.write_text("  \n", encoding="utf-8")
    with pytest.raises(UserInputError, match=r"^empty.yaml is empty: write one rule"):
        load_rules_file(empty)
    broken = tmp_path / "broken.yaml"
    broken.write_text("all:\n  - {field: a, op: =\n", encoding="utf-8")
    with pytest.raises(UserInputError) as caught:
        load_rules_file(broken)
    assert caught.value.message.startswith("broken.yaml is not valid YAML (line ")
    assert "\n" not in caught.value.message
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"all": [}', encoding="utf-8")
    with pytest.raises(UserInputError, match=r"^bad.json is not valid JSON \(line 1, column 10"):
        load_rules_file(bad_json)


def test_json_schema_describes_every_node_kind_for_the_ui() -> None:
    schema = rules_json_schema()
    json.dumps(schema)
    titles = {d["title"] for d in schema["$defs"].values()}
    assert {"Condition", "AllGroup", "AnyGroup", "NotGroup", "SegmentRef"} <= titles
    ops = schema["$defs"]["Operator"]["enum"]
    assert ops == [o.value for o in Operator]
    assert "not" in schema["$defs"]["NotGroup"]["properties"]


@pytest.mark.parametrize(
    ("text", "period"),
    [
        ("90 days", Period(90, "days")),
        ("12 hours", Period(12, "hours")),
        ("2 weeks", Period(2, "weeks")),
        ("1 day", Period(1, "days")),
        ("30 days ago", Period(30, "days", ago=True)),
        ("45 Minutes", Period(45, "minutes")),
        ("7d", Period(7, "days")),
    ],
)
def test_periods(text: str, period: Period) -> None:
    assert parse_period(text) == period


@pytest.mark.parametrize("text", ["", "days", "0 days", "3 months", "-2 days", "90", 90, None])
def test_not_periods(text: object) -> None:
    assert parse_period(text) is None
