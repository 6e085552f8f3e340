"""Checking rules against a dataset's columns and the other segments: every message."""

from __future__ import annotations

import pytest

from audiencesync.errors import UserInputError
from audiencesync.segments.rules import load_rules_text, rules_error
from audiencesync.segments.validation import SegmentInfo, check_rules

COLUMNS = {
    "id": "BIGINT",
    "age": "BIGINT",
    "score": "DOUBLE",
    "price": "DECIMAL(10,2)",
    "country": "VARCHAR",
    "email": "VARCHAR",
    "vip": "BOOLEAN",
    "birthday": "DATE",
    "last_order": "TIMESTAMP",
    "signed_up": "TIMESTAMP WITH TIME ZONE",
    "tags": "VARCHAR[]",
}
CATALOG = {
    "adults": SegmentInfo("adults", "customers", ()),
    "churned": SegmentInfo("churned", "customers", ()),
    "big_orders": SegmentInfo("big_orders", "orders", ()),
    "vips": SegmentInfo("vips", "customers", ("adults",)),
}


def problems(
    text: str, *, segment: str | None = "new", catalog: dict[str, SegmentInfo] | None = None
) -> list[str]:
    found = check_rules(
        load_rules_text(text),
        dataset="customers",
        columns=COLUMNS,
        segment=segment,
        catalog=CATALOG if catalog is None else catalog,
    )
    return [str(p) for p in found]


def test_a_good_rule_has_no_problems() -> None:
    text = """
    any:
      - all:
          - {field: age, op: between, value: [30, 50]}
          - {field: country, op: in, value: [US, GB]}
          - {field: price, op: '>=', value: '19.99'}
          - {field: score, op: '<', value: 2.5}
          - {field: vip, op: '=', value: true}
          - {field: email, op: ends with, value: '@example.com'}
          - {field: tags, op: is not null}
      - all:
          - {field: last_order, op: in the last, value: 90 days}
          - {field: signed_up, op: before, value: 2 weeks ago}
          - {field: birthday, op: '<', value: 2000-01-01}
          - {field: last_order, op: '>=', value: '2026-01-01T10:00:00'}
          - not: {segment: churned}
    """
    assert problems(text) == []


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            "{all: [{field: contry, op: '=', value: US}]}",
            "rule all[0]: dataset 'customers' has no field 'contry'; did you mean country?",
        ),
        (
            "{field: zzz, op: is null}",
            "the top-level rule: dataset 'customers' has no field 'zzz'; fields are age, "
            "birthday, country, email, id, last_order, price, score, ...",
        ),
        (
            "{any: [{field: age, op: '=', value: 1}, {all: [{field: id, op: '>', value: 0}, "
            "{field: age, op: contains, value: '3'}]}]}",
            "rule any[1].all[1]: 'contains' does not apply to field 'age', which holds numbers; "
            "use one of =, !=, <, <=, >, >=, between, in, not in, is null, is not null.",
        ),
        (
            "{field: country, op: in the last, value: 90 days}",
            "the top-level rule: 'in the last' does not apply to field 'country', which holds "
            "text; use one of =, !=, in, not in, contains, starts with, ends with, is null, "
            "is not null.",
        ),
        (
            "{field: country, op: '<', value: M}",
            "the top-level rule: '<' does not apply to field 'country', which holds text; use "
            "one of =, !=, in, not in, contains, starts with, ends with, is null, is not null.",
        ),
        (
            "{field: vip, op: '>', value: true}",
            "the top-level rule: '>' does not apply to field 'vip', which holds true/false "
            "values; use one of =, !=, is null, is not null.",
        ),
        (
            "{field: tags, op: '=', value: x}",
            "the top-level rule: '=' does not apply to field 'tags', which holds values rules "
            "cannot compare; use one of is null, is not null.",
        ),
        (
            "{field: age, op: '=', value: abc}",
            "the top-level rule: value 'abc' is not a number (field 'age' holds numbers).",
        ),
        (
            "{field: age, op: '=', value: true}",
            "the top-level rule: value True is true/false, not a number (field 'age' holds "
            "numbers).",
        ),
        (
            "{field: birthday, op: '>', value: 31/12/1999}",
            "the top-level rule: value '31/12/1999' is not a date (write it as YYYY-MM-DD) "
            "(field 'birthday' holds dates).",
        ),
        (
            "{field: last_order, op: '>', value: yesterday}",
            "the top-level rule: value 'yesterday' is not a date and time (write it as "
            "YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS) (field 'last_order' holds dates and times).",
        ),
        (
            "{field: vip, op: '=', value: maybe}",
            "the top-level rule: value 'maybe' is not true or false (field 'vip' holds "
            "true/false values).",
        ),
        (
            "{field: country, op: '=', value: yes}",
            "the top-level rule: value True is true/false, not text (put it in quotes) "
            "(field 'country' holds text).",
        ),
        (
            "{field: age, op: in, value: [1, two]}",
            "the top-level rule: value 'two' is not a number (field 'age' holds numbers).",
        ),
        (
            "{field: age, op: in, value: 3}",
            "the top-level rule: 'in' needs a list of one or more values, such as [US, GB].",
        ),
        (
            "{field: country, op: not in, value: []}",
            "the top-level rule: 'not in' needs a list of one or more values, such as [US, GB].",
        ),
        (
            "{field: age, op: between, value: [30]}",
            "the top-level rule: 'between' needs a list of two values [low, high], such as "
            "[30, 50].",
        ),
        (
            "{field: age, op: between, value: [50, 30]}",
            "the top-level rule: the low bound 50 is above the high bound 30; swap them.",
        ),
        (
            "{field: age, op: '='}",
            "the top-level rule: '=' needs a value; to match a missing value use 'is null'.",
        ),
        (
            "{field: age, op: '!='}",
            "the top-level rule: '!=' needs a value; to match a missing value use 'is not null'.",
        ),
        (
            "{field: age, op: '>'}",
            "the top-level rule: '>' needs a value.",
        ),
        (
            "{field: email, op: is null, value: x}",
            "the top-level rule: 'is null' takes no value; remove the value 'x'.",
        ),
        (
            "{field: last_order, op: in the last, value: 3 months}",
            "the top-level rule: 'in the last' needs a period such as '90 days', '12 hours' or "
            "'2 weeks' (minutes, hours, days or weeks), not '3 months'.",
        ),
        (
            "{field: last_order, op: before, value: 30}",
            "the top-level rule: 'before' needs a period such as '30 days ago', '12 hours' or "
            "'2 weeks' (minutes, hours, days or weeks), not 30.",
        ),
        (
            "{field: last_order, op: in the last, value: 30 days ago}",
            "the top-level rule: write 'in the last 30 days' without 'ago'.",
        ),
        (
            "{any: [{segment: adults}, {not: {segment: churnd}}]}",
            "rule any[1].not: there is no segment named 'churnd'; did you mean churned?",
        ),
        (
            "{segment: nothing_like_it}",
            "the top-level rule: there is no segment named 'nothing_like_it'; its dataset's "
            "segments are adults, churned, vips.",
        ),
        (
            "{all: [{segment: adults}, {segment: big_orders}]}",
            "rule all[1]: segment 'big_orders' is over dataset 'orders', not 'customers'; a "
            "segment can only use segments of its own dataset.",
        ),
        (
            "{all: [{segment: new}]}",
            "rule all[0]: segment 'new' cannot include itself.",
        ),
    ],
)
def test_each_problem_has_its_message(rule: str, message: str) -> None:
    assert problems(rule) == [message]


def test_a_cycle_through_other_segments_is_refused_with_its_loop() -> None:
    # Updating "adults" to use "vips", which already uses "adults".
    found = problems(
        "{all: [{field: age, op: '>=', value: 18}, {segment: vips}]}", segment="adults"
    )
    assert found == [
        "rule all[1]: segment 'vips' leads back to 'adults' (adults -> vips -> adults); "
        "a segment cannot include itself, even through others."
    ]


def test_a_longer_cycle_is_found() -> None:
    catalog = {
        "a": SegmentInfo("a", "customers", ()),
        "b": SegmentInfo("b", "customers", ("a",)),
        "c": SegmentInfo("c", "customers", ("b",)),
    }
    found = problems("{not: {segment: c}}", segment="a", catalog=catalog)
    assert found == [
        "rule not: segment 'c' leads back to 'a' (a -> c -> b -> a); a segment cannot include "
        "itself, even through others."
    ]


def test_every_problem_is_reported_once_with_its_own_path() -> None:
    text = """
    any:
      - {field: agee, op: '=', value: 1}
      - {field: agee, op: '=', value: 1}
      - {field: age, op: contains, value: 1}
      - {segment: missing}
    """
    found = problems(text)
    assert [f.split(":")[0] for f in found] == [
        "rule any[0]",
        "rule any[1]",
        "rule any[2]",
        "rule any[3]",
    ]
    error = rules_error(
        check_rules(
            load_rules_text(text),
            dataset="customers",
            columns=COLUMNS,
            segment="x",
            catalog=CATALOG,
        )
    )
    assert isinstance(error, UserInputError)
    lines = error.message.splitlines()
    assert lines[0] == "the rules have 4 problems:"
    assert all(line.startswith("  - rule any[") and line.endswith((".", "?")) for line in lines[1:])


def test_a_single_problem_is_one_line() -> None:
    error = rules_error(
        check_rules(
            load_rules_text("{field: agee, op: '=', value: 1}"),
            dataset="customers",
            columns=COLUMNS,
            segment="x",
            catalog=CATALOG,
        )
    )
    assert "\n" not in error.message
