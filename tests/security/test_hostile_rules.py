"""Findings 3 and 5 of issue 13: hostile rule documents are refused at once (400, one
sentence, under 100 ms) while other requests are answered; NUL bytes and out-of-range numbers are
refused by validation, and a segment saved with one before the fix answers 400, not 500."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from sqlalchemy import update

from audiencesync.control.models import Segment
from tests.integration.api.conftest import Api

VALIDATE = "/api/v1/segments/validate"


def alias_bomb(levels: int = 9) -> str:
    """The billion-laughs YAML: each anchor holds nine references to the previous one."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


def deep_rule(depth: int) -> str:
    """A rule ``depth`` 'not's deep, as JSON text (json.dumps itself would recurse)."""
    return '{"not": ' * depth + '{"field": "age", "op": ">", "value": 1}' + "}" * depth


HOSTILE_TEXT = {
    "alias bomb": alias_bomb(),
    "recursive alias": "a: &a [*a]\n",
    "5,000-deep YAML": "[" * 5000 + "]" * 5000,
    "5,000-deep rule": deep_rule(5000),
}

#: Refusal times measured by the tests below (milliseconds), printed with -s.
MEASURED: dict[str, float] = {}


def _timed_post(
    client: httpx.Client, body: dict[str, object] | str
) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    if isinstance(body, str):
        answer = client.post(VALIDATE, content=body, headers={"content-type": "application/json"})
    else:
        answer = client.post(VALIDATE, json=body)
    return answer, (time.perf_counter() - started) * 1000


@pytest.mark.parametrize("case", sorted(HOSTILE_TEXT))
def test_hostile_rule_text_is_refused_at_once_while_others_are_answered(
    profiles: Api, case: str
) -> None:
    api = profiles
    other: list[int] = []
    stop = threading.Event()

    def keep_asking() -> None:
        with api.client_for(api.actors[next(iter(api.actors))]) as client:
            while not stop.is_set():
                other.append(client.get("/api/v1/datasets").status_code)

    neighbour = threading.Thread(target=keep_asking, daemon=True)
    warm, _ = _timed_post(api.viewer, {"dataset": "customers", "rules": {"segment": "gb"}})
    assert warm.status_code == 200, warm.text
    neighbour.start()
    deadline = time.monotonic() + 30
    while not other and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        body = {"dataset": "customers", "rules_text": HOSTILE_TEXT[case]}
        # The best of three: the bound is the server's work, not this shared machine's
        # scheduling (a parse that took seconds, as on main, fails all three).
        tries = [_timed_post(api.viewer, body) for _ in range(3)]
        answer, elapsed = tries[0][0], min(ms for _, ms in tries)
        as_json, elapsed_json = _timed_post(
            api.viewer, {"dataset": "customers", "rules": None, "rules_text": None}
        )
        deep_body = '{"dataset": "customers", "rules": ' + deep_rule(5000) + "}"
        deep_tries = [_timed_post(api.viewer, deep_body) for _ in range(3)]
        deep, elapsed_deep = deep_tries[0][0], min(ms for _, ms in deep_tries)
    finally:
        stop.set()
        neighbour.join(30)
    MEASURED[case] = elapsed
    MEASURED["5,000-deep JSON body"] = elapsed_deep
    print(f"\n{case}: refused in {elapsed:.1f} ms; 5,000-deep JSON body in {elapsed_deep:.1f} ms")
    assert {a.status_code for a, _ in tries} == {400}, answer.text
    assert elapsed < 100, f"{case} took {elapsed:.1f} ms to refuse (the bound is 100 ms)"
    assert elapsed_deep < 100, f"a 5,000-deep JSON body took {elapsed_deep:.1f} ms"
    detail = answer.json()["detail"]
    assert "\n" not in detail
    assert any(w in detail for w in ("alias", "anchor", "deeper than")), detail
    assert as_json.status_code == 400  # no rules at all: one sentence too
    assert elapsed_json >= 0
    assert deep.status_code == 400, deep.text
    assert "deeper than" in deep.json()["detail"]
    assert len(other) > 1, "the parallel requests were not answered meanwhile"
    assert set(other) == {200}


BAD_VALUES = {
    "NUL in a value": {"field": "country", "op": "=", "value": "G\u0000B"},
    "NUL in a list": {"field": "country", "op": "in", "value": ["GB", "\u0000"]},
    "integer beyond int64": {"field": "age", "op": "=", "value": 2**64},
    "integer text beyond int64": {"field": "age", "op": ">", "value": "99999999999999999999"},
    "negative beyond int64": {"field": "age", "op": "<", "value": -(2**63) - 1},
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_nul_and_huge_numbers_are_refused_by_validation(profiles: Api, case: str) -> None:
    api = profiles
    rule = BAD_VALUES[case]
    checked = api.viewer.post(VALIDATE, json={"dataset": "customers", "rules": rule})
    assert checked.status_code == 400, checked.text
    assert any(w in checked.json()["detail"] for w in ("NUL", "beyond")), checked.text
    created = api.contributor.post(
        "/api/v1/segments", json={"name": "bad", "dataset": "customers", "rules": rule}
    )
    assert created.status_code == 400, created.text
    as_text = api.viewer.post(
        VALIDATE, json={"dataset": "customers", "rules_text": json.dumps(rule)}
    )
    assert as_text.status_code == 400, as_text.text


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_a_segment_saved_with_a_bad_value_answers_400_on_count_and_preview(
    profiles: Api, case: str
) -> None:
    api = profiles
    # Saved before validation refused them (main accepted these rules, then answered 500).
    with api.ctx.db.session() as session:
        session.execute(update(Segment).where(Segment.name == "gb").values(rules=BAD_VALUES[case]))
    for path in ("/api/v1/segments/gb/count", "/api/v1/segments/gb/preview"):
        answer = api.viewer.get(path)
        assert answer.status_code == 400, (path, answer.text)
        assert any(w in answer.json()["detail"] for w in ("NUL", "beyond")), answer.text


def test_non_finite_numbers_are_refused(profiles: Api) -> None:
    for text in ("{field: age, op: '>', value: .inf}", "{field: age, op: '=', value: .nan}"):
        answer = profiles.viewer.post(VALIDATE, json={"dataset": "customers", "rules_text": text})
        assert answer.status_code == 400, answer.text
        assert "finite" in answer.json()["detail"]


def test_oversized_bodies_and_rule_texts_are_refused(profiles: Api) -> None:
    api = profiles
    rule = "{any: [" + ", ".join(["{field: country, op: '=', value: GB}"] * 2000) + "]}"
    answer = api.viewer.post(VALIDATE, json={"dataset": "customers", "rules_text": rule})
    assert answer.status_code == 400, answer.text
    assert "bytes is more than" in answer.json()["detail"]
    huge = b'{"dataset": "customers", "rules_text": "' + b"x" * (2 << 20) + b'"}'
    answer = api.viewer.post(VALIDATE, content=huge, headers={"content-type": "application/json"})
    assert answer.status_code == 413, answer.text
    assert "AUDIENCESYNC_MAX_REQUEST_BYTES" in answer.json()["detail"]


# --- issue 13, second review: periods, wide rules and JSON rules past the caps ---------

HUGE_PERIODS: dict[str, dict[str, object]] = {
    "999,999,999 days": {"op": "in the last", "value": "999999999 days"},
    "weeks ago past the calendar": {"op": "before", "value": "9999999999 weeks ago"},
    "20 digits": {"op": "in the last", "value": "99999999999999999999 days"},
    "a day past the limit": {"op": "in the last", "value": "36601 days"},
}


def _people(api: Api) -> None:
    """Dataset ``people`` with a date field ``signup``, and its segment ``recent``."""
    from audiencesync.control.models import Role
    from audiencesync.profiles import store
    from audiencesync.segments import service
    from audiencesync.segments.rules import parse_rules

    source = api.tmp_path / "people.csv"
    source.write_text("customer_id,signup\n1,2020-01-01\n2,1990-06-30\n")
    admin = api.actors[Role.ADMIN]
    store.import_file(api.ctx, admin, source, key="customer_id", name="people")
    recent = parse_rules({"field": "signup", "op": "in the last", "value": "90 days"})
    service.create_segment(api.ctx, admin, "recent", dataset="people", rules=recent)


@pytest.mark.parametrize("case", sorted(HUGE_PERIODS))
def test_a_period_past_100_years_is_one_sentence_and_a_stored_one_is_not_a_500(
    api: Api, case: str
) -> None:
    _people(api)
    rule = dict(HUGE_PERIODS[case], field="signup")
    checked = api.viewer.post(VALIDATE, json={"dataset": "people", "rules": rule})
    assert checked.status_code == 400, checked.text
    assert "longer than 36,600 days" in checked.json()["detail"], checked.text
    created = api.contributor.post(
        "/api/v1/segments", json={"name": "old", "dataset": "people", "rules": rule}
    )
    assert created.status_code == 400, created.text
    # The limit itself is a period like any other.
    limit = dict(rule, value="36600 days ago" if rule["op"] == "before" else "36600 days")
    ok = api.viewer.post(VALIDATE, json={"dataset": "people", "rules": limit})
    assert ok.status_code == 200, ok.text
    # Saved before the bound (main accepted these, then count, preview, explain and sql
    # answered 500 with an OverflowError).
    with api.ctx.db.session() as session:
        session.execute(update(Segment).where(Segment.name == "recent").values(rules=rule))
    for sub in ("count", "preview", "explain", "sql"):
        answer = api.viewer.get(f"/api/v1/segments/recent/{sub}")
        assert answer.status_code == 400, (sub, answer.text)
        assert "longer than 36,600 days" in answer.json()["detail"], answer.text


def _expected_count(ages: set[int]) -> int:
    """Profiles of the fixture whose age is in ``ages``, counted in Python from the CSV."""
    import csv
    import io

    from tests.snap_helpers import PROFILES_CSV

    rows = csv.DictReader(io.StringIO(PROFILES_CSV))
    return sum(1 for row in rows if row["age"] and int(row["age"]) in ages)


def test_a_rule_of_1000_conditions_counts_right_and_1001_are_refused(profiles: Api) -> None:
    api = profiles
    ages = set(range(0, 2000, 2))  # 1,000 even ages
    wide = {"any": [{"field": "age", "op": "=", "value": age} for age in sorted(ages)]}
    assert len(json.dumps(wide)) > 30_000
    created = api.contributor.post(
        "/api/v1/segments", json={"name": "wide", "dataset": "customers", "rules": wide}
    )
    assert created.status_code == 201, created.text
    # Main built a left-deep chain of 1,000 ORs: RecursionError inside Ibis, a 500.
    counted = api.viewer.get("/api/v1/segments/wide/count")
    assert counted.status_code == 200, counted.text
    expected = _expected_count(ages)
    assert 0 < expected < 4
    assert counted.json()["size"] == expected
    preview = api.viewer.get("/api/v1/segments/wide/preview")
    assert preview.status_code == 200, preview.text
    assert api.viewer.get("/api/v1/segments/wide/sql").status_code == 200
    # "all" of 1,000 "not"s: the complement, through the same balanced tree.
    narrow = {"all": [{"not": c} for c in wide["any"]]}
    checked = api.viewer.post(VALIDATE, json={"dataset": "customers", "rules": narrow})
    assert checked.status_code == 200, checked.text
    wider = {"any": [*wide["any"], {"field": "age", "op": "=", "value": 2001}]}
    for body in ({"rules": wider}, {"rules_text": json.dumps(wider)}):
        refused = api.viewer.post(VALIDATE, json={"dataset": "customers", **body})
        assert refused.status_code == 400, refused.text
        detail = refused.json()["detail"]
        assert "1,001 conditions, more than the 1,000" in detail, detail
        assert "\n" not in detail


def test_json_rules_past_64_kb_are_refused_like_rule_text(profiles: Api) -> None:
    api = profiles
    # 729 KB as JSON: main stored it, and each count took about 18 s.
    big = {"field": "age", "op": "in", "value": list(range(120_000))}
    as_json = api.viewer.post(VALIDATE, json={"dataset": "customers", "rules": big})
    as_text = api.viewer.post(
        VALIDATE, json={"dataset": "customers", "rules_text": json.dumps(big)}
    )
    created = api.contributor.post(
        "/api/v1/segments", json={"name": "big", "dataset": "customers", "rules": big}
    )
    for answer in (as_json, as_text, created):
        assert answer.status_code == 400, answer.text
        assert "bytes is more than the 65,536 a rule may take" in answer.json()["detail"]
    assert api.viewer.get("/api/v1/segments/big").status_code == 404
    # Just under the cap is a rule like any other.
    fits = {"field": "age", "op": "in", "value": list(range(10_000))}
    assert len(json.dumps(fits, separators=(",", ":"))) < 65_536
    ok = api.viewer.post(VALIDATE, json={"dataset": "customers", "rules": fits})
    assert ok.status_code == 200, ok.text
