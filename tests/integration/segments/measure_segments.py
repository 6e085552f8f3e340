"""Measure (never assert) segment evaluation and streaming over N synthetic profiles.

    .venv/bin/python -m tests.integration.segments.measure_segments --profiles 1000000

Prints one JSON object: seconds and peak RSS of each phase. Every phase, the synthetic
data set-up included, runs in a fresh process started by this small parent, so its peak
RSS is its own (``ru_maxrss`` only grows, and a child inherits its parent's at fork);
``baseline`` is a process that only imports audiencesync.segments and opens the home.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from audiencesync.control.context import Context
    from audiencesync.control.permissions import Actor

RULES = """
any:
  - all:
      - {field: age, op: between, value: [30, 50]}
      - {field: country, op: in, value: [US, GB, FR]}
  - all:
      - {field: last_order, op: in the last, value: 90 days}
      - not: {segment: churned}
"""


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _open(home: Path) -> tuple[Context, Actor]:
    from audiencesync.control.context import Context
    from audiencesync.control.users import resolve_actor
    from audiencesync.settings import Settings

    ctx = Context.open(Settings(home=home, database_url=None, secret_key=None, user=None))
    return ctx, resolve_actor(ctx, "admin")


def _setup(home: Path, profiles: int) -> dict[str, float]:
    import duckdb

    from audiencesync.control import users
    from audiencesync.control.context import Context
    from audiencesync.control.db import Database
    from audiencesync.profiles import store
    from audiencesync.segments import create_segment, load_rules_text
    from audiencesync.settings import Settings

    settings = Settings(home=home, database_url=None, secret_key=None, user=None)
    home.mkdir(parents=True)
    Database(settings.control_database_url).migrate()
    ctx = Context.open(settings)
    users.create_first_admin(ctx, "admin", "measure-password")
    admin = users.resolve_actor(ctx, "admin")
    source = home.parent / "profiles.parquet"
    duckdb.sql(
        f"""
        SELECT range AS id,
               'person' || range || '@example.com' AS email,
               (hash(range) % 80)::INT + 15 AS age,
               ['US', 'GB', 'FR', 'DE', 'ES', 'IT'][(hash(range * 7) % 6)::INT + 1] AS country,
               (hash(range * 13) % 3 = 0) AS churned_flag,
               TIMESTAMP '2026-11-28 12:00:00'
                   - to_days((hash(range * 31) % 720)::INT) AS last_order,
               (hash(range * 17) % 10000) / 100.0 AS score
        FROM range({profiles})
        """
    ).write_parquet(str(source))
    started = time.perf_counter()
    store.import_file(ctx, admin, source, key="id", name="people")
    imported = time.perf_counter() - started
    create_segment(
        ctx,
        admin,
        "churned",
        dataset="people",
        rules=load_rules_text("{field: churned_flag, op: '=', value: true}"),
    )
    create_segment(ctx, admin, "target", dataset="people", rules=load_rules_text(RULES))
    create_segment(
        ctx,
        admin,
        "high_score",
        dataset="people",
        rules=load_rules_text("{field: score, op: '>=', value: 90}"),
    )
    ctx.close()
    return {"import_seconds": round(imported, 2), "peak_rss_mb": round(_peak_mb())}


def _phase(home: Path, phase: str) -> dict[str, object]:
    from datetime import UTC, datetime

    from audiencesync.segments import count_segment, explain_segment, stream_members

    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    ctx, admin = _open(home)
    result: dict[str, object] = {}
    started = time.perf_counter()
    if phase == "count":
        result["members"] = count_segment(ctx, admin, "target", now=now).size
    elif phase == "explain":
        result["members"] = explain_segment(ctx, admin, "target", now=now).count
    elif phase == "stream":
        rows = batches = largest = 0
        with stream_members(ctx, ["target", "high_score"], ["email", "country"], now=now) as stream:
            for batch in stream:
                rows += batch.num_rows
                batches += 1
                largest = max(largest, batch.num_rows)
        result.update(members=rows, batches=batches, largest_batch=largest)
    result["seconds"] = round(time.perf_counter() - started, 2)
    result["peak_rss_mb"] = round(_peak_mb())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        if args.phase == "setup":
            print(json.dumps(_setup(args.home, args.profiles)))
        elif args.phase == "baseline":
            import audiencesync.segments  # noqa: F401 (what the phases load: Ibis, DuckDB)

            _open(args.home)
            print(json.dumps({"peak_rss_mb": round(_peak_mb())}))
        else:
            print(json.dumps(_phase(args.home, args.phase)))
        return
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        report: dict[str, object] = {"profiles": args.profiles}
        for phase in ("setup", "baseline", "count", "explain", "stream"):
            output = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    __spec__.name,
                    "--phase",
                    phase,
                    "--home",
                    str(home),
                    "--profiles",
                    str(args.profiles),
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            report[phase] = json.loads(output)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
