"""``audiencesync segments ...`` end to end, as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.cli_runner import CliResult, run_cli
from tests.conftest import PASSWORD
from tests.integration.segments.conftest import people_table

RULES = """\
any:
  - all:
      - {field: age, op: between, value: [30, 50]}
      - {field: country, op: in, value: [US, GB]}
  - {field: vip, op: '=', value: true}
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    assert run_cli("init", "--password-stdin", home=home, input_text=PASSWORD).code == 0
    data = tmp_path / "people.parquet"
    pq.write_table(people_table(), data)
    imported = run_cli("profiles", "import", str(data), "--key", "id", home=home)
    assert imported.code == 0, imported.output
    return home


def ok(result: CliResult) -> str:
    assert result.code == 0, result.output
    assert "Traceback" not in result.output
    return result.stdout


def test_create_list_show_count_preview_explain(home: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    created = ok(
        run_cli(
            "segments", "create", "Target", "--dataset", "people", "--rules", str(rules), home=home
        )
    )
    assert "Created segment 'target' over dataset 'people'." in created

    assert "Segment 'target': 5 members" in ok(run_cli("segments", "count", "target", home=home))

    listed = ok(run_cli("segments", "list", home=home))
    assert "target" in listed
    assert "people" in listed
    assert " 5 " in listed

    shown = ok(run_cli("segments", "show", "target", home=home))
    assert "dataset: people" in shown
    assert "op: between" in shown
    assert "size over time" in shown

    sql = ok(run_cli("segments", "show", "target", "--sql", home=home))
    assert sql.startswith("SELECT")
    assert 'FROM "people"' in sql
    assert "BETWEEN 30 AND 50" in sql

    preview = ok(
        run_cli(
            "segments", "preview", "target", "--limit", "2", "--fields", "email,country", home=home
        )
    )
    assert "Ann@Example.com" in preview
    assert "bob@mail.co.uk" in preview
    assert "carol@example.org" not in preview
    assert "2 of 5 members shown." in preview

    explained = ok(run_cli("segments", "explain", "target", home=home))
    lines = explained.splitlines()
    assert lines[0] == "any of: 5"
    assert any(line.endswith("age between 30 and 50: 4") for line in lines)
    assert any(line.endswith("country in [US, GB]: 4") for line in lines)
    assert any(line.endswith("vip = True: 3") for line in lines)
    assert lines[-1] == "Segment 'target': 5 members."

    history = ok(run_cli("segments", "history", "target", home=home))
    assert "explain" in history
    assert "preview" in history
    assert "count" in history

    schema = json.loads(ok(run_cli("segments", "rules-schema", home=home)))
    assert schema["title"] == "audiencesync segment rule"


def test_update_and_remove(home: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"field": "age", "op": ">=", "value": 18}), encoding="utf-8")
    ok(
        run_cli(
            "segments", "create", "adults", "--dataset", "people", "--rules", str(rules), home=home
        )
    )
    uses = tmp_path / "uses.yaml"
    uses.write_text("not: {segment: adults}\n", encoding="utf-8")
    ok(
        run_cli(
            "segments", "create", "minors", "--dataset", "people", "--rules", str(uses), home=home
        )
    )
    refused = run_cli("segments", "remove", "adults", home=home)
    assert refused.code == 4
    assert refused.stderr.strip() == (
        "error: segment 'adults' is used by segment(s) minors: change or remove those first."
    )
    rules.write_text(json.dumps({"field": "age", "op": ">", "value": 20}), encoding="utf-8")
    assert "Updated segment 'minors'." in ok(
        run_cli("segments", "update", "minors", "--rules", str(rules), home=home)
    )
    assert "Removed segment 'adults'." in ok(run_cli("segments", "remove", "adults", home=home))


def test_a_bad_rules_file_ends_in_one_clear_line(home: Path, tmp_path: Path) -> None:
    rules = tmp_path / "bad.yaml"
    rules.write_text("all:\n  - {field: agee, op: '>', value: 30}\n", encoding="utf-8")
    result = run_cli(
        "segments", "create", "x", "--dataset", "people", "--rules", str(rules), home=home
    )
    assert result.code == 2
    assert "Traceback" not in result.output
    assert result.stderr.strip() == (
        "error: rule all[0]: dataset 'people' has no field 'agee'; did you mean age?"
    )
    rules.write_text("all: [\n", encoding="utf-8")
    result = run_cli(
        "segments", "create", "x", "--dataset", "people", "--rules", str(rules), home=home
    )
    assert result.code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: bad.yaml is not valid YAML (line ")
    missing = run_cli(
        "segments", "create", "x", "--dataset", "people", "--rules", "nope.yaml", home=home
    )
    assert missing.code == 2
    assert (
        missing.stderr.strip() == "error: the rules file nope.yaml does not exist: check the path."
    )
    viewer = run_cli(
        "users",
        "add",
        "victor",
        "--role",
        "viewer",
        "--password-stdin",
        home=home,
        input_text=PASSWORD,
    )
    assert viewer.code == 0, viewer.output
    rules.write_text("{field: age, op: '>', value: 30}", encoding="utf-8")
    denied = run_cli(
        "--as",
        "victor",
        "segments",
        "create",
        "x",
        "--dataset",
        "people",
        "--rules",
        str(rules),
        home=home,
    )
    assert denied.code == 5
    assert "victor is a viewer and cannot create, change or remove segments" in denied.stderr
