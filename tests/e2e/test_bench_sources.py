"""``audiencesync bench --source postgres`` measures a linked table like a file.

(``--source spark`` runs the same code with a Spark table; it starts four Spark sessions,
minutes on these machines, so the Spark source's export is tested in
tests/integration/segments/test_spark.py instead.)

The same synthetic profiles go through each source; every figure that is not a time or
a memory size (members, identifiers added and removed, requests) must equal the file
path's, which is the independent computation here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli_runner import run_cli
from tests.conftest import own_postgres_database

pytestmark = pytest.mark.slow

PROFILES = "3000"


def _bench(tmp_path: Path, *args: str) -> dict[str, Any]:
    result = run_cli(
        "bench", "--profiles", PROFILES, "--identifiers", "email,phone", *args,
        home=tmp_path / "unused", timeout=280,
    )  # fmt: skip
    assert result.code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _counted(report: dict[str, Any]) -> dict[str, Any]:
    picked = {}
    for run in ("full_run", "incremental_run"):
        figures = report[run]
        picked[run] = {k: figures[k] for k in ("status", "members", "added", "removed")}
    picked["members_only"] = report["members_only"]["members"]
    return picked


@pytest.fixture(scope="module")
def file_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _bench(tmp_path_factory.mktemp("bench-file"))


@pytest.mark.postgres
def test_bench_over_postgres_counts_what_the_file_path_counts(
    file_report: dict[str, Any], tmp_path: Path
) -> None:
    # A database of its own: the test database holds other workers' control schemas.
    with own_postgres_database("as_bench_") as url:
        report = _bench(tmp_path, "--source", "postgres", "--postgres-url", url)
    assert report["source"] == "postgres"
    assert report.keys() == file_report.keys()
    assert _counted(report) == _counted(file_report)
    assert report["full_run"]["members"] == int(PROFILES)


def test_bench_over_postgres_needs_a_url(tmp_path: Path) -> None:
    result = run_cli(
        "bench", "--profiles", "10", "--source", "postgres", home=tmp_path,
        env={"AUDIENCESYNC_BENCH_POSTGRES_URL": ""},
    )  # fmt: skip
    assert result.code != 0
    assert "--source postgres needs --postgres-url" in result.output
    assert "Traceback" not in result.output
