"""`audiencesync privacy ...` as a user runs it: erase one person from three exports on two
connections, keep them out of --full runs, resume a killed erasure, and find the raw
identifiers nowhere: not in the control database, the home folder or the logs."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from audiencesync.control import audit
from audiencesync.control.context import Context
from audiencesync.control.models import Role
from audiencesync.control.permissions import Actor
from audiencesync.emulator.testing import EmulatorHandle, running_emulator
from audiencesync.identifiers import hash_value
from audiencesync.profiles import store
from audiencesync.segments import service as segments
from audiencesync.segments.rules import parse_rules
from audiencesync.sync import exports, privacy, retention, runs
from audiencesync.sync.exports import ExportSpec
from audiencesync.types import IdentifierType
from tests.cli_runner import run_cli
from tests.snap_helpers import connect, emulator_settings

# The person to erase, as the data protection officer types them.
EMAIL = "Erase.Me.Please@Example.org"
PHONE = "+1 (415) 555-0199"
MAID = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
#: every form of them that must never be stored or logged (as given, and normalized).
RAW_FORMS = [EMAIL, EMAIL.lower(), PHONE, "+14155550199", "4155550199", MAID, MAID.lower()]
HASHES = {
    IdentifierType.EMAIL: hash_value(IdentifierType.EMAIL, EMAIL),
    IdentifierType.PHONE: hash_value(IdentifierType.PHONE, PHONE),
    IdentifierType.MAID: hash_value(IdentifierType.MAID, MAID),
}
SCHEMAS = {
    IdentifierType.EMAIL: "EMAIL_SHA256",
    IdentifierType.PHONE: "PHONE_SHA256",
    IdentifierType.MAID: "MOBILE_AD_ID_SHA256",
}
OTHERS = 60


def profiles_csv(*, with_person: bool) -> str:
    lines = ["customer_id,email,phone,maid,tier"]
    for i in range(1, OTHERS + 1):
        lines.append(
            f"{i},person{i}@example.com,+1 415 555 {1000 + i},"
            f"00000000-0000-4000-8000-{i:012d},{'gold' if i % 2 else 'blue'}"
        )
    if with_person:
        lines.append(f'999,{EMAIL},"{PHONE}",{MAID},gold')
    return "\n".join(lines) + "\n"


@pytest.fixture
def emulator() -> Iterator[EmulatorHandle]:
    with running_emulator() as handle:
        yield handle


@pytest.fixture
def setup(
    sqlite_ctx: Context, sqlite_actors: dict[Role, Actor], emulator: EmulatorHandle,
    tmp_path: Path,
) -> tuple[Context, Actor, dict[str, str], Path]:  # fmt: skip
    """Three exports holding the person, on two connections; each run once."""
    ctx, admin = sqlite_ctx, sqlite_actors[Role.ADMIN]
    ctx.settings = emulator_settings(ctx.settings, emulator)
    connect(ctx, admin, "Snap")
    connect(ctx, admin, "Snap EU")
    source = tmp_path / "data" / "customers.csv"
    source.parent.mkdir()
    source.write_text(profiles_csv(with_person=True))
    store.import_file(ctx, admin, source, key="customer_id", name="customers")
    for name, rules in {
        "everyone": {"field": "customer_id", "op": "is not null"},
        "gold": {"field": "tier", "op": "=", "value": "gold"},
    }.items():
        segments.create_segment(ctx, admin, name, dataset="customers", rules=parse_rules(rules))
    audiences = {}
    for name, connection, segment, mode in (
        ("all-mirror", "Snap", "everyone", "mirror"),
        ("gold-adds", "Snap EU", "gold", "add-only"),
        ("gold-mirror", "Snap EU", "gold", "mirror"),
    ):
        audiences[name] = str(emulator.create_segment_directly(name)["id"])
        exports.add_export(
            ctx, admin,
            ExportSpec(name=name, connection=connection, segments=(segment,), mode=mode,
                       email_field="email", phone_field="phone", maid_field="maid",
                       default_country="US", audience_id=audiences[name]),
        )  # fmt: skip
        assert runs.run_now(ctx, admin, name).status == "succeeded"
        for kind, schema in SCHEMAS.items():
            assert HASHES[kind] in emulator.members(audiences[name], schema)
    return ctx, admin, audiences, source


def env_of(emulator: EmulatorHandle, **extra: str) -> dict[str, str]:
    return {
        "AUDIENCESYNC_SNAPCHAT_API_URL": emulator.api_url,
        "AUDIENCESYNC_SNAPCHAT_AUTH_URL": emulator.auth_url,
        "AUDIENCESYNC_SNAPCHAT_CLIENT_ID": emulator.client_id,
        "AUDIENCESYNC_SNAPCHAT_CLIENT_SECRET": emulator.client_secret,
        "AUDIENCESYNC_LOG_LEVEL": "DEBUG",
        "AUDIENCESYNC_RUN_LEASE_SECONDS": "1",
        **extra,
    }


def erase_args() -> list[str]:
    return ["privacy", "erase", "--email", EMAIL, "--phone", PHONE, "--maid", MAID]


def assert_erased_everywhere(emulator: EmulatorHandle, audiences: dict[str, str]) -> None:
    for name, audience in audiences.items():
        for kind, schema in SCHEMAS.items():
            members = emulator.members(audience, schema)
            assert HASHES[kind] not in members, (name, kind)
            expected = OTHERS if name == "all-mirror" else OTHERS // 2
            assert len(members) == expected, (name, kind, len(members))


def test_a_killed_erasure_resumes_exact_keeps_them_out_and_leaves_no_trace(
    setup: tuple[Context, Actor, dict[str, str], Path],
    emulator: EmulatorHandle,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    ctx, admin, audiences, source = setup
    caplog.set_level(logging.DEBUG)
    home, env = ctx.settings.resolved_home, env_of(emulator)
    # `privacy erase`, killed while it removes: slow removals make the kill land mid-way.
    emulator.set_faults(latency_ms=700, only_kinds=["remove_users"])
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AUDIENCESYNC_")}
    environment.update(env, AUDIENCESYNC_HOME=str(home))
    killed_log = tmp_path / "killed.log"
    with killed_log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "audiencesync", *erase_args()],
            env=environment, stdout=stderr, stderr=stderr,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            erasure_runs = [r for r in runs.list_runs(ctx, admin) if r.trigger == "erasure"]
            if any(r.status == "running" and r.export != "all-mirror" for r in erasure_runs):
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    emulator.clear_faults()
    (view,) = privacy.list_erasures(ctx, admin)
    assert view.status == "running"
    held = [
        name for name, audience in audiences.items()
        if HASHES[IdentifierType.EMAIL] in emulator.members(audience, "EMAIL_SHA256")
    ]  # fmt: skip
    assert held, "the kill came after the erasure had finished: nothing to resume"
    # Already the erased list keeps them out of any run, before the erasure is resumed.
    time.sleep(1.2)  # the killed process's leases (erasure and run) expire
    resumed = run_cli("privacy", "erasures", "resume", str(view.id), home=home, env=env)
    assert resumed.code == 0, resumed.output
    assert f"erasure {view.id}: succeeded" in resumed.stdout, resumed.stdout
    for name in audiences:
        assert f"export {name!r}: done" in resumed.stdout
    assert_erased_everywhere(emulator, audiences)
    statuses = {r.status for r in runs.list_runs(ctx, admin) if r.trigger == "erasure"}
    assert "interrupted" in statuses
    final = privacy.get_erasure(ctx, admin, view.id)
    assert {name: item["status"] for name, item in final.exports.items()} == dict.fromkeys(
        audiences, "done"
    )
    # The report counts every attempt, the killed one's included, each identifier once.
    for name, item in final.exports.items():
        assert item["removed"] == {"email": 1, "maid": 1, "phone": 1}, name
    for run in runs.list_runs(ctx, admin):
        if run.trigger == "erasure" and run.status == "interrupted":
            assert run.id in final.exports[run.export]["runs"]
    # No later run, --full included, sends them again.
    for name in audiences:
        full = runs.run_now(ctx, admin, name, full=True)
        assert full.status == "succeeded", full.errors
        assert full.counts["suppressed"] == {"email": 1, "maid": 1, "phone": 1}
    assert_erased_everywhere(emulator, audiences)
    assert privacy.erased_summary(ctx) == {"email": 1, "maid": 1, "phone": 1}
    # The grep finds the person where they still are (the imported dataset, raw values in
    # Parquet): the check below can fail.
    assert any("customers" in place for place in find_raw_forms(home, []))
    # The person leaves the source too; the superseded import is swept.
    source.write_text(profiles_csv(with_person=False))
    store.refresh(ctx, admin, "customers")
    old = time.time() - 3600
    for path in (home / "profiles" / "customers").glob("*.parquet"):
        os.utime(path, (old, old))
    assert retention.sweep(ctx).versions_removed == 1
    report = run_cli("privacy", "report", "--json", home=home, env=env)
    assert report.code == 0, report.output
    entries = json.loads(report.stdout)["entries"]
    assert {"dataset", "snapshot", "erased_identifiers"} <= {e["category"] for e in entries}
    erased_entry = next(e for e in entries if e["category"] == "erased_identifiers")
    assert erased_entry["items"] == 3
    snapshots = {e["name"]: e["items"] for e in entries if e["category"] == "snapshot"}
    assert snapshots == {"all-mirror": 3 * OTHERS, "gold-adds": 3 * OTHERS // 2,
                         "gold-mirror": 3 * OTHERS // 2}  # fmt: skip
    entries_of_audit = [e.action for e in audit.list_entries(ctx, admin, limit=100)]
    assert "privacy.erase" in entries_of_audit

    logs = [killed_log.read_text(), resumed.stderr, report.stderr, caplog.text]
    found = find_raw_forms(home, [resumed.stdout, report.stdout, *logs])
    assert found == [], found
    assert logs[0], "the killed erasure logged nothing: the log check proves nothing"
    assert caplog.text, "nothing was logged in-process: the log check proves nothing"
    for hashed in HASHES.values():
        assert hashed is not None
        assert all(hashed not in text for text in logs)


def find_raw_forms(home: Path, texts: list[str]) -> list[str]:
    """Where any raw form of the person appears: database rows, files, Parquet, logs."""
    found = []
    needles = [form.lower() for form in RAW_FORMS]
    with sqlite3.connect(home / "control.db") as db:
        dump = "\n".join(db.iterdump()).lower()
    found += [f"control database: {n}" for n in needles if n in dump]
    for path in home.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes().lower()
        found += [f"{path}: {n}" for n in needles if n.encode() in data]
        if path.suffix == ".parquet":
            text = json.dumps(pq.read_table(path).to_pylist(), default=str).lower()
            found += [f"{path} (contents): {n}" for n in needles if n in text]
    for text in texts:
        found += [f"output: {n}" for n in needles if n in text.lower()]
    return found


def test_suppression_lists_on_the_command_line(
    sqlite_ctx: Context, sqlite_actors: dict[Role, Actor], tmp_path: Path
) -> None:
    home = sqlite_ctx.settings.resolved_home
    listing = tmp_path / "optouts.csv"
    listing.write_text(f"id,email\n1,{EMAIL}\n2,other@example.com\n3,\n")
    made = run_cli("privacy", "suppress", "add", "optouts", "--type", "email", "--file",
                   str(listing), "--column", "email", "--all", home=home)  # fmt: skip
    assert made.code == 0, made.output
    assert "'optouts': 2 email identifier(s), applies to every export" in made.stdout
    assert "values not usable (left out): empty 1" in made.stdout
    shown = run_cli("privacy", "suppress", "show", "optouts", "--json", home=home)
    assert json.loads(shown.stdout)["size"] == 2
    listed = run_cli("privacy", "suppress", "list", home=home)
    assert "optouts" in listed.stdout
    refused = run_cli("--as", "carol", "privacy", "suppress", "list", home=home)
    assert refused.code != 0
    assert refused.stderr.startswith(
        "error: carol is a contributor and cannot manage suppression lists, erasures"
    )
    bad = run_cli("privacy", "suppress", "add", "x", "--type", "fax", "--file", str(listing),
                  "--all", home=home)  # fmt: skip
    assert bad.code != 0
    assert bad.stderr == (
        "error: unknown identifier type 'fax': use one of email, phone, maid; "
        "use --type email|phone|maid.\n"
    )
    for result in (made, shown, listed, refused, bad):
        assert HASHES[IdentifierType.EMAIL] not in result.output
        assert EMAIL.lower() not in result.output.lower()
