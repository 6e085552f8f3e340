"""Unification from the command line, on the shipped example of three sources."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from audiencesync.control import users
from audiencesync.profiles import store
from audiencesync.settings import Settings
from tests.cli_runner import run_cli
from tests.conftest import _initialised

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "unify"
#: The example's true persons, labelled by hand from the three files.
PERSONS = [
    {("crm", "1"), ("shop", "s-10"), ("shop", "s-11")},  # Ann: email, then phone
    {("crm", "2"), ("loyalty", "L1")},  # Bob: customer number with a space
    {("crm", "3"), ("shop", "s-12"), ("loyalty", "L3")},  # Cy: last name + postcode
    {("crm", "4"), ("loyalty", "L2")},  # Dora: phone and customer number
    {("shop", "s-13"), ("loyalty", "L5")},  # Eve: last name + postcode
    {("loyalty", "L4")},  # Ng: only the placeholder email, refused
]
UNIFY = [
    "profiles", "unify", "people", "--from", "crm:customer_id", "--from",
    "shop:order_customer", "--from", "loyalty:card", "--rules", str(EXAMPLE / "rules.yaml"),
]  # fmt: skip


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home with the example's three datasets, set up in-process (the commands under
    test are the unification's; importing is tested elsewhere)."""
    home = tmp_path / "home"
    ctx = _initialised(Settings(home=home, database_url=None, secret_key=None, user=None))
    try:
        admin = users.resolve_actor(ctx, "admin")
        for name, key in (("crm", "customer_id"), ("shop", "order_customer"), ("loyalty", "card")):
            store.import_file(ctx, admin, EXAMPLE / f"{name}.csv", key=key, name=name)
    finally:
        ctx.close()
    return home


def test_the_example_unifies_into_its_six_people(home: Path, tmp_path: Path) -> None:
    done = run_cli(*UNIFY, home=home)
    assert done.code == 0, done.output
    assert "Unified 13 records of 3 source(s) into 6 profiles" in done.stdout

    links = tmp_path / "links.csv"
    exported = run_cli("profiles", "unified-links", "people", "--output", str(links), home=home)
    assert exported.code == 0, exported.output
    with links.open() as handle:
        rows = list(csv.DictReader(handle))
    groups: dict[str, set[tuple[str, str]]] = {}
    for row in rows:
        groups.setdefault(row["unified_id"], set()).add((row["dataset"], row["source_key"]))
    assert sorted(map(sorted, groups.values())) == sorted(map(sorted, PERSONS))

    stats = json.loads(run_cli("profiles", "unified-stats", "people", "--json", home=home).stdout)
    figures = stats["stats"]
    assert stats["sources"] == ["crm:customer_id", "shop:order_customer", "loyalty:card"]
    assert figures["source_records"] == {"crm": 4, "shop": 4, "loyalty": 5}
    assert figures["unified_profiles"] == len(PERSONS)
    assert figures["records_per_profile"]["max"] == 3
    assert figures["refused_keys"]["keys"] == 1
    assert figures["refused_keys"]["records"] == 4  # noreply@ in any case, 4 records
    assert "noreply" not in json.dumps(figures).lower()  # never the value itself
    text = run_cli("profiles", "unified-stats", "people", home=home).stdout
    assert "email: shared by 4 records" in text

    cy = next(row["unified_id"] for row in rows if row["source_key"] == "L3")
    explained = json.loads(
        run_cli("profiles", "explain-unified", "people", cy, "--json", home=home).stdout
    )
    assert {r["key"]: r["joined_by"] for r in explained["records"]} == {
        "3": "last_name+postcode", "s-12": "last_name+postcode", "L3": "last_name+postcode",
    }  # fmt: skip
    assert any(link["refused"] and link["rule"] == "email" for link in explained["links"])

    # A refresh of the dataset matches again and keeps the ids.
    again = run_cli("profiles", "refresh", "people", home=home)
    assert again.code == 0, again.output
    assert "Refreshed 'people': 6 profiles." in again.stdout
    exported = run_cli("profiles", "unified-links", "people", "--output", str(links), home=home)
    with links.open() as handle:
        assert list(csv.DictReader(handle)) == rows


def test_mistakes_end_in_one_sentence(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("fields: {email: email}\nmatch: [phone]\n")
    cases = [
        (["--rules", str(bad)], "match rule 'phone' uses 'phone', which is not a common field"),
    ]
    for extra, message in cases:
        done = run_cli("profiles", "unify", "u", "--from", "crm:customer_id", *extra, home=home)
        assert done.code == 2, done.output
        assert message in done.stderr
        assert "Traceback" not in done.output
    done = run_cli(
        "profiles", "unify", "u", "--from", "crm", "--rules", str(EXAMPLE / "rules.yaml"),
        home=home,
    )  # fmt: skip
    assert done.code == 2
    assert "is not DATASET:KEY" in done.stderr
    missing = run_cli("profiles", "explain-unified", "nope", "1", home=home)
    assert missing.code == 3
    assert "no unification named 'nope'" in missing.stderr
