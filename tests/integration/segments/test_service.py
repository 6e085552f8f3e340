"""Segment services on SQLite and PostgreSQL control databases: changes, permissions,
references, history, and the audit log."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from audiencesync.control.audit import list_entries
from audiencesync.control.context import Context
from audiencesync.control.models import Role, Segment, SegmentEvaluation
from audiencesync.control.permissions import Actor
from audiencesync.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    UserInputError,
)
from audiencesync.profiles import store
from audiencesync.segments import (
    count_segment,
    create_segment,
    explain_segment,
    get_segment,
    list_segments,
    load_rules_text,
    preview_segment,
    remove_segment,
    segment_history,
    segment_sql,
    update_segment,
    validate_rules,
)
from audiencesync.segments import service as segment_service
from tests.integration.segments.conftest import NOW, import_people, people_table

ADULTS = load_rules_text("{field: age, op: '>=', value: 18}")
UK = load_rules_text("{field: country, op: '=', value: GB}")


@pytest.fixture
def people(ctx: Context, actors: dict[Role, Actor], tmp_path: Path) -> dict[Role, Actor]:
    import_people(ctx, actors[Role.ADMIN], tmp_path)
    return actors


def test_create_list_show_update_remove_with_audit(ctx: Context, people: dict[Role, Actor]) -> None:
    carol = people[Role.CONTRIBUTOR]
    created = create_segment(
        ctx, carol, "Adults", dataset="people", rules=ADULTS, description="18 and over"
    )
    assert (created.name, created.dataset, created.created_by) == ("adults", "people", "carol")
    assert created.rules == ADULTS
    assert created.last_size is None
    assert [s.name for s in list_segments(ctx, carol)] == ["adults"]
    assert list_segments(ctx, carol, dataset="other") == []

    updated = update_segment(ctx, people[Role.ADMIN], "adults", rules=UK)
    assert updated.rules == UK
    assert updated.updated_by == "admin"
    assert updated.description == "18 and over"
    assert get_segment(ctx, carol, "adults").rules == UK

    remove_segment(ctx, carol, "adults")
    with pytest.raises(NotFoundError, match=r"there is no segment named 'adults'"):
        get_segment(ctx, carol, "adults")

    entries = list_entries(ctx, people[Role.ADMIN], target="segment:adults")
    assert [e.action for e in entries] == ["segment.remove", "segment.update", "segment.create"]
    assert entries[2].after == {
        "dataset": "people",
        "rules": {"field": "age", "op": ">=", "value": 18},
        "description": "18 and over",
    }
    assert entries[1].before is not None
    assert entries[1].before["rules"] == {"field": "age", "op": ">=", "value": 18}
    assert entries[1].after is not None
    assert entries[1].after["rules"] == {"field": "country", "op": "=", "value": "GB"}


@pytest.mark.parametrize(
    ("role", "allowed"),
    [(Role.ADMIN, True), (Role.CONTRIBUTOR, True), (Role.VIEWER, False)],
)
def test_who_may_change_segments(
    ctx: Context, people: dict[Role, Actor], role: Role, allowed: bool
) -> None:
    who = people[role]
    if not allowed:
        with pytest.raises(PermissionDeniedError, match=r"victor is a viewer and cannot create"):
            create_segment(ctx, who, "adults", dataset="people", rules=ADULTS)
        create_segment(ctx, people[Role.ADMIN], "adults", dataset="people", rules=ADULTS)
        with pytest.raises(PermissionDeniedError):
            update_segment(ctx, who, "adults", rules=UK)
        with pytest.raises(PermissionDeniedError):
            remove_segment(ctx, who, "adults")
    else:
        create_segment(ctx, who, "adults", dataset="people", rules=ADULTS)
        update_segment(ctx, who, "adults", rules=UK)
    # Everyone may look and count.
    assert get_segment(ctx, who, "adults").name == "adults"
    assert count_segment(ctx, who, "adults", now=NOW).size > 0
    assert preview_segment(ctx, who, "adults", now=NOW).size > 0
    assert explain_segment(ctx, who, "adults", now=NOW).count > 0
    assert segment_sql(ctx, who, "adults", now=NOW).startswith("SELECT")
    assert len(segment_history(ctx, who, "adults")) == 3
    if allowed:
        remove_segment(ctx, who, "adults")


def test_bad_rules_are_refused_and_nothing_is_saved(
    ctx: Context, people: dict[Role, Actor]
) -> None:
    admin = people[Role.ADMIN]
    bad = load_rules_text(
        "{any: [{field: agge, op: '>', value: 1}, {field: email, op: '<', value: x}]}"
    )
    with pytest.raises(UserInputError) as caught:
        create_segment(ctx, admin, "broken", dataset="people", rules=bad)
    assert caught.value.message.splitlines() == [
        "the rules have 2 problems:",
        "  - rule any[0]: dataset 'people' has no field 'agge'; did you mean age?",
        "  - rule any[1]: '<' does not apply to field 'email', which holds text; use one of "
        "=, !=, in, not in, contains, starts with, ends with, is null, is not null.",
    ]
    assert list_segments(ctx, admin) == []
    assert list_entries(ctx, admin, target="segment:broken") == []
    with pytest.raises(UserInputError, match="has no field 'agge'"):
        validate_rules(ctx, admin, bad, dataset="people")


def test_names_datasets_and_duplicates(ctx: Context, people: dict[Role, Actor]) -> None:
    admin = people[Role.ADMIN]
    with pytest.raises(UserInputError, match=r"'no way' is not a valid segment name"):
        create_segment(ctx, admin, "no way", dataset="people", rules=ADULTS)
    with pytest.raises(NotFoundError, match=r"there is no profile dataset named 'nope'"):
        create_segment(ctx, admin, "adults", dataset="nope", rules=ADULTS)
    create_segment(ctx, admin, "adults", dataset="people", rules=ADULTS)
    with pytest.raises(ConflictError, match=r"a segment named 'adults' already exists"):
        create_segment(ctx, admin, "ADULTS", dataset="people", rules=UK)
    with pytest.raises(NotFoundError, match=r"there is no segment named 'kids'"):
        update_segment(ctx, admin, "kids", rules=UK)


def test_a_cycle_is_refused_and_the_segment_is_unchanged(
    ctx: Context, people: dict[Role, Actor]
) -> None:
    admin = people[Role.ADMIN]
    create_segment(ctx, admin, "a", dataset="people", rules=ADULTS)
    create_segment(ctx, admin, "b", dataset="people", rules=load_rules_text("{segment: a}"))
    create_segment(
        ctx,
        admin,
        "c",
        dataset="people",
        rules=load_rules_text("{all: [{segment: b}, " + "{field: vip, op: '=', value: true}]}"),
    )
    with pytest.raises(UserInputError) as caught:
        update_segment(ctx, admin, "a", rules=load_rules_text("{any: [{segment: c}]}"))
    assert caught.value.message == (
        "rule any[0]: segment 'c' leads back to 'a' (a -> c -> b -> a); a segment cannot "
        "include itself, even through others."
    )
    assert get_segment(ctx, admin, "a").rules == ADULTS
    with pytest.raises(UserInputError, match=r"segment 'a' cannot include itself"):
        update_segment(ctx, admin, "a", rules=load_rules_text("{not: {segment: a}}"))


def test_removing_a_referenced_segment_is_refused_naming_its_users(
    ctx: Context, people: dict[Role, Actor]
) -> None:
    admin = people[Role.ADMIN]
    create_segment(ctx, admin, "adults", dataset="people", rules=ADULTS)
    create_segment(ctx, admin, "uk", dataset="people", rules=UK)
    both = load_rules_text("{all: [{segment: adults}, {segment: uk}]}")
    create_segment(ctx, admin, "uk_adults", dataset="people", rules=both)
    create_segment(
        ctx,
        admin,
        "not_adults",
        dataset="people",
        rules=load_rules_text("{not: {segment: adults}}"),
    )
    with pytest.raises(ConflictError) as caught:
        remove_segment(ctx, admin, "adults")
    assert caught.value.message == (
        "segment 'adults' is used by segment(s) not_adults, uk_adults: change or remove "
        "those first."
    )
    # Once no rule refers to it any more, it can go.
    update_segment(ctx, admin, "uk_adults", rules=load_rules_text("{segment: uk}"))
    remove_segment(ctx, admin, "not_adults")
    remove_segment(ctx, admin, "adults")
    assert [s.name for s in list_segments(ctx, admin)] == ["uk", "uk_adults"]


def test_removing_a_segment_an_export_uses_is_refused(
    ctx: Context, people: dict[Role, Actor], monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = people[Role.ADMIN]
    create_segment(ctx, admin, "adults", dataset="people", rules=ADULTS)
    monkeypatch.setattr(segment_service, "segment_dependents", lambda s, i: ["weekly", "vip-uk"])
    with pytest.raises(ConflictError) as caught:
        remove_segment(ctx, admin, "adults")
    assert caught.value.message == (
        "segment 'adults' is used by export(s) weekly, vip-uk: take it out of those exports first."
    )


def test_a_dataset_with_segments_cannot_be_removed(ctx: Context, people: dict[Role, Actor]) -> None:
    admin = people[Role.ADMIN]
    create_segment(ctx, admin, "adults", dataset="people", rules=ADULTS)
    with pytest.raises(ConflictError, match=r"dataset 'people' is used by segment\(s\) adults"):
        store.remove(ctx, admin, "people")
    remove_segment(ctx, admin, "adults")
    store.remove(ctx, admin, "people")


def test_each_evaluation_records_size_and_time(ctx: Context, people: dict[Role, Actor]) -> None:
    admin, victor = people[Role.ADMIN], people[Role.VIEWER]
    create_segment(ctx, admin, "adults", dataset="people", rules=ADULTS)
    assert count_segment(ctx, victor, "adults", now=NOW).size == 6
    preview = preview_segment(ctx, victor, "adults", now=NOW, limit=2, fields=["email", "age"])
    assert preview.size == 6
    assert preview.rows.column_names == ["id", "email", "age"]
    assert preview.rows.column("id").to_pylist() == [1, 2]
    explain_segment(ctx, victor, "adults", now=NOW)
    history = segment_history(ctx, victor, "adults")
    assert [(h.kind, h.size, h.actor) for h in history] == [
        ("explain", 6, "victor"),
        ("preview", 6, "victor"),
        ("count", 6, "victor"),
    ]
    assert all(h.duration_ms >= 0 for h in history)
    assert history[0].at >= history[-1].at
    listed = list_segments(ctx, victor)[0]
    assert (listed.last_size, listed.last_evaluated_at) == (6, history[0].at)
    remove_segment(ctx, admin, "adults")
    with ctx.db.session() as session:
        assert session.scalars(select(SegmentEvaluation)).all() == []


def test_explain_counts_every_rule_and_group(ctx: Context, people: dict[Role, Actor]) -> None:
    admin = people[Role.ADMIN]
    create_segment(ctx, admin, "uk", dataset="people", rules=UK)
    rules = load_rules_text(
        """
        any:
          - all:
              - {field: age, op: between, value: [30, 50]}
              - {field: country, op: in, value: [US, GB]}
          - all:
              - {field: last_order, op: in the last, value: 90 days}
              - not: {segment: uk}
        """
    )
    create_segment(ctx, admin, "mixed", dataset="people", rules=rules)
    tree = explain_segment(ctx, admin, "mixed", now=NOW)

    def flat(node: segment_service.ExplainNode) -> list[tuple[str, str, int]]:
        return [(node.path, node.label, node.count)] + [x for c in node.children for x in flat(c)]

    assert flat(tree) == [
        ("top", "any of", 5),
        ("any[0]", "all of", 2),
        ("any[0].all[0]", "age between 30 and 50", 4),
        ("any[0].all[1]", "country in [US, GB]", 4),
        ("any[1]", "all of", 3),
        ("any[1].all[0]", "last_order in the last 90 days", 4),
        ("any[1].all[1]", "not", 6),
        ("any[1].all[1].not", "segment uk", 2),
    ]


def test_preview_checks_its_arguments(ctx: Context, people: dict[Role, Actor]) -> None:
    admin = people[Role.ADMIN]
    create_segment(ctx, admin, "adults", dataset="people", rules=ADULTS)
    with pytest.raises(UserInputError, match=r"has no field 'emial'; did you mean email\?"):
        preview_segment(ctx, admin, "adults", fields=["emial"])
    with pytest.raises(UserInputError, match=r"the number of rows must be between 0 and 10,000"):
        preview_segment(ctx, admin, "adults", limit=-1)


def test_a_rule_that_no_longer_fits_its_dataset_says_so(
    ctx: Context, people: dict[Role, Actor], tmp_path: Path
) -> None:
    admin = people[Role.ADMIN]
    create_segment(ctx, admin, "adults", dataset="people", rules=ADULTS)
    path = tmp_path / "slim.parquet"
    pq.write_table(people_table().drop_columns(["age"]), path)
    store.import_file(ctx, admin, path, key="id", name="people")
    with pytest.raises(UserInputError) as caught:
        count_segment(ctx, admin, "adults")
    assert caught.value.message.startswith(
        "segment 'adults' no longer fits dataset 'people' (update its rules): the top-level "
        "rule: dataset 'people' has no field 'age'"
    )


def test_segments_are_stored_with_their_references(ctx: Context, people: dict[Role, Actor]) -> None:
    admin = people[Role.ADMIN]
    create_segment(ctx, admin, "adults", dataset="people", rules=ADULTS)
    view = create_segment(
        ctx, admin, "grown", dataset="people", rules=load_rules_text("{any: [{segment: adults}]}")
    )
    assert view.references == ("adults",)
    with ctx.db.session() as session:
        stored = session.scalar(select(Segment.rules).where(Segment.name == "grown"))
    assert stored == {"any": [{"segment": "adults"}]}


def test_segments_of_another_dataset_cannot_be_used(
    ctx: Context, people: dict[Role, Actor], tmp_path: Path
) -> None:
    admin = people[Role.ADMIN]
    other = tmp_path / "orders.parquet"
    pq.write_table(pa.table({"order_id": [1, 2], "total": [5.0, 7.5]}), other)
    store.import_file(ctx, admin, other, key="order_id", name="orders")
    create_segment(
        ctx,
        admin,
        "big",
        dataset="orders",
        rules=load_rules_text("{field: total, op: '>', value: 6}"),
    )
    with pytest.raises(
        UserInputError, match=r"segment 'big' is over dataset 'orders', not 'people'"
    ):
        create_segment(ctx, admin, "x", dataset="people", rules=load_rules_text("{segment: big}"))
