"""``audiencesync profiles bench-unify``: seconds and peak memory of a unification.

Three synthetic sources of ``--records`` records each (a CRM, a shop, a loyalty
programme) hold overlapping people with messy emails and phones, customer numbers and a
placeholder email shared by many. They are imported, then unified, then unified again
after the shop's records change (the refresh path, with stable ids), each unification in
a fresh process (``python -m audiencesync profiles ...``) so its peak RSS is its own.
Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import duckdb
import typer

from audiencesync.cli.walkthrough import open_new_home
from audiencesync.errors import UserInputError
from audiencesync.profiles import store
from audiencesync.profiles.unify import service as unify
from audiencesync.settings import Settings

RULES = """\
fields:
  email: email
  phone: phone
  customer_number: code
  first_name: text
  last_name: text
  postcode: code
sources:
  shop: {fields: {email: mail, phone: tel}}
  loyalty: {fields: {customer_number: member, phone: mobile}, updated_at: seen}
match:
  - email
  - phone
  - customer_number
  - [last_name, postcode]
survivorship:
  first_name: most_recent
default_country: GB
"""


def write_sources(folder: Path, records: int, *, shift: int = 0) -> dict[str, Path]:
    """Three Parquet files of ``records`` rows each; people overlap between sources.

    The CRM holds people 0..n-1, the shop people n/2..3n/2-1 (shifted by ``shift``
    to change its records), the loyalty programme every other person of 0..2n-1.
    """
    paths = {name: folder / f"{name}.parquet" for name in ("crm", "shop", "loyalty")}
    email = (
        "CASE WHEN p % 211 = 0 THEN 'noreply@example.com' "
        "WHEN p % 3 = 0 THEN '  User' || p || '@Example.COM ' "
        "ELSE 'user' || p || '@example.com' END"
    )
    phone = (
        "CASE WHEN p % 5 = 0 THEN NULL WHEN p % 2 = 0 THEN '+44 77' || lpad(p::VARCHAR, 8, '0') "
        "ELSE '077' || lpad(p::VARCHAR, 8, '0') END"
    )
    names = "['smith','jones','taylor','brown','patel','khan','wood','hall'][1 + p % 8]"
    con = duckdb.connect()
    try:
        con.execute(
            f"COPY (SELECT 'c' || p AS customer_id, {email} AS email, {phone} AS phone, "
            f"'C' || lpad(p::VARCHAR, 9, '0') AS customer_number, 'first' || (p % 97) AS "
            f"first_name, {names} AS last_name, 'AB' || p || ' 1XY' AS postcode "
            f"FROM range(0, {records}) t(p)) TO '{paths['crm']}' (FORMAT parquet)"
        )
        half = records // 2 + shift
        con.execute(
            f"COPY (SELECT 's' || p AS shop_id, CASE WHEN p % 4 = 0 THEN NULL ELSE {email} END "
            f"AS mail, {phone} AS tel FROM range({half}, {half} + {records}) t(p)) "
            f"TO '{paths['shop']}' (FORMAT parquet)"
        )
        con.execute(
            f"COPY (SELECT 'l' || p AS card, 'c ' || lpad(p::VARCHAR, 9, '0') AS member, "
            f"CASE WHEN p % 3 = 1 THEN {phone} END AS mobile, {names} AS last_name, "
            f"'ab' || p || '1xy' AS postcode, TIMESTAMP '2026-01-01' + "
            f"INTERVAL (p % 300) DAY AS seen "
            f"FROM range(0, {2 * records}, 2) t(p)) TO '{paths['loyalty']}' (FORMAT parquet)"
        )
    finally:
        con.close()
    return paths


_WRAPPER = (
    "import atexit, resource, sys\n"
    "atexit.register(lambda: sys.stderr.write("
    "f'\\nPEAK_RSS_KB={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n'))\n"
    "from audiencesync.cli.main import main\n"
    "sys.argv = ['audiencesync', *sys.argv[1:]]\n"
    "main()\n"
)


def _unify_isolated(home: Path, args: list[str]) -> tuple[float, int]:
    """Run ``audiencesync ARGS`` in a fresh process: (seconds, its peak RSS in bytes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIENCESYNC_")}
    env["AUDIENCESYNC_HOME"] = str(home)
    for name in ("AUDIENCESYNC_DUCKDB_MEMORY_LIMIT", "AUDIENCESYNC_DUCKDB_THREADS"):
        if name in os.environ:
            env[name] = os.environ[name]
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-c", _WRAPPER, *args],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the timed unification failed: {done.stderr.strip()[-500:]}")
    peak = [line for line in done.stderr.splitlines() if line.startswith("PEAK_RSS_KB=")]
    return seconds, int(peak[-1].split("=", 1)[1]) * 1024


def bench_unify(
    records: Annotated[
        int, typer.Option("--records", help="Records per source (three sources).")
    ] = 1_000_000,
) -> None:
    """Time a unification of three sources and its refresh; print one JSON object."""
    if records < 10:
        raise UserInputError("--records must be at least 10.")
    scratch = Path(tempfile.mkdtemp(prefix="audiencesync-bench-unify-"))
    try:
        data = scratch / "data"
        data.mkdir()
        paths = write_sources(data, records)
        home = scratch / "home"
        ctx, admin, _ = open_new_home(
            Settings(home=home, database_url=None, secret_key=None, user=None)
        )
        try:
            started = time.perf_counter()
            for name, key in (("crm", "customer_id"), ("shop", "shop_id"), ("loyalty", "card")):
                store.import_file(ctx, admin, paths[name], key=key, name=name)
            import_seconds = time.perf_counter() - started
        finally:
            ctx.close()
        rules = scratch / "rules.yaml"
        rules.write_text(RULES)
        unify_args = [
            "profiles", "unify", "people", "--from", "crm:customer_id", "--from",
            "shop:shop_id", "--from", "loyalty:card", "--rules", str(rules),
        ]  # fmt: skip
        first_seconds, first_peak = _unify_isolated(home, unify_args)
        write_sources(data, records, shift=max(1, records // 100))
        ctx, admin, _ = _reopen(home)
        try:
            store.refresh(ctx, admin, "shop")
            before = unify.get_unification(ctx, admin, "people").stats
        finally:
            ctx.close()
        refresh_seconds, refresh_peak = _unify_isolated(home, ["profiles", "refresh", "people"])
        ctx, admin, _ = _reopen(home)
        try:
            after = unify.get_unification(ctx, admin, "people").stats
        finally:
            ctx.close()
        report: dict[str, Any] = {
            "records_per_source": records,
            "source_records": before["source_records_total"],
            "unified_profiles": before["unified_profiles"],
            "refused_keys": before["refused_keys"]["keys"],
            "import_seconds": round(import_seconds, 3),
            "unify": {
                "seconds": round(first_seconds, 3),
                "phases": before["seconds"],
                "peak_rss_mb": round(first_peak / 2**20),
            },
            "refresh": {
                "seconds": round(refresh_seconds, 3),
                "phases": after["seconds"],
                "history": after["history"],
                "peak_rss_mb": round(refresh_peak / 2**20),
            },
            "duckdb_memory_limit": os.environ.get("AUDIENCESYNC_DUCKDB_MEMORY_LIMIT")
            or "default (docs: duck.py)",
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    sys.stdout.write(json.dumps(report, indent=2) + "\n")


def _reopen(home: Path) -> tuple[Any, Any, None]:
    from audiencesync.control import users
    from audiencesync.control.context import Context

    ctx = Context.open(Settings(home=home, database_url=None, secret_key=None, user=None))
    return ctx, users.resolve_actor(ctx, "admin"), None
