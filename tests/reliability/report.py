"""Render ``docs/reliability.md`` from the figures the reliability suites wrote.

``python -m tests.reliability.report [--merge] FOLDER docs/reliability.md`` (``make soak``
runs it; ``make fuzz`` with ``--merge``): FOLDER holds one JSON file per suite
(:mod:`tests.reliability.figures`). Every number in the page comes from those files;
nothing is typed in by hand. With ``--merge`` the sections of suites this pass did not
run keep what the page said before.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

SOAK_ROWS = (
    ("cases tried", "cases"),
    ("runs recorded", "runs"),
    ("run processes SIGKILLed", "run processes killed"),
    ("... of which while their run was recorded running", "kills mid-run"),
    ("kills that came too late (run already over)", "kills missed (run already over)"),
    ("emulator SIGKILLed and restarted from --state", "emulator_kills"),
    ("faults injected (429, 500, 503, dropped connections)", "faults_injected"),
    ("... of which 5xx answers", "server_errors_injected"),
    ("early access-token expiries", "early token expiries"),
    ("data changes between runs", "data changes"),
    ("segment changes between runs", "segment changes"),
    ("full re-sends", "full runs"),
    ("audience checks (after each successful run, and the final run)", "audience checks"),
    ("identifiers compared", "identifiers compared"),
    ("mismatches", "mismatches"),
    ("tracebacks from runs not killed", "tracebacks"),
    ("profiles in the file", "profiles"),
    ("seconds", "seconds"),
)
WORKER_ROWS = (
    ("bursts", "bursts"),
    ("exports", "exports"),
    ("simultaneous run requests", "requests"),
    ("answers by status", "answers"),
    ("5xx answers", "server_errors"),
    ("runs", "runs"),
    ("run statuses", "run_statuses"),
    ("runs of one export overlapping", "overlapping_runs"),
    ("identifiers compared", "identifiers compared"),
    ("mismatches", "mismatches"),
    ("worker tracebacks", "worker tracebacks"),
)


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in sorted(value.items())) or "none"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value) or "none"
    return str(value)


def _table(rows: tuple[tuple[str, str], ...], figures: dict[str, Any]) -> list[str]:
    lines = ["| | |", "| --- | --- |"]
    for label, key in rows:
        lines.append(f"| {label} | {_cell(figures.get(key, 0))} |")
    return lines


def _commit() -> str:
    found = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return found.stdout.strip() or "unknown"


def _outcomes(folder: Path) -> list[str]:
    """One line per test of the pass (its outcome), from pytest's JUnit XML files."""
    files = sorted(folder.glob("junit*.xml"))
    if not files:
        return ["No test outcomes were recorded in this pass."]
    lines = ["| test | outcome | seconds |", "| --- | --- | --- |"]
    for junit in files:
        for case in ElementTree.parse(junit).getroot().iter("testcase"):
            outcome = "passed"
            for kind in ("failure", "error", "skipped"):
                found = case.find(kind)
                if found is not None:
                    reason = ((found.get("message") or "").splitlines() or [""])[0][:120]
                    outcome = f"{kind}: {reason}".replace("|", "/")
            name = f"{case.get('classname', '')}.{case.get('name', '')}".removeprefix("tests.")
            lines.append(f"| {name} | {outcome} | {float(case.get('time', 0)):.1f} |")
    return lines


SCHEMATHESIS_ROWS = (
    ("control database", "control database"),
    ("operations in the OpenAPI document", "operations"),
    ("tokens (roles)", "roles"),
    ("rounds over every operation, role and mode", "rounds"),
    ("stopped by its time budget", "stopped by the time budget"),
    ("requests", "requests"),
    ("answers by status", "answers by status"),
    ("server errors (5xx)", "server errors"),
    ("schema violations (status, content type, body)", "schema violations"),
    ("failures by check", "failures by check"),
    ("seconds", "seconds"),
)
NOT_RUN = "Not run in this pass"
TESTS_HEADING = "## Every test of the pass"


def _schemathesis(suites: dict[str, Any]) -> list[str]:
    found = {k: v for k, v in suites.items() if k.startswith("schemathesis-")}
    lines = [
        "Every operation of `/api/openapi.json`, fuzzed with an administrator's and a",
        "viewer's token, with requests that fit the document (positive) and requests that",
        "do not (negative); a share of the cases name the dataset, segment, connection,",
        "export and run that exist. Checks: no 5xx (`not_a_server_error`), the status is",
        "one the operation declares, the content type and the body fit what it declares.",
        "Generated requests cannot remove or change the two fuzzing users nor revoke their",
        "tokens, nor remove the fixtures the other cases read (see the test's docstring).",
        "",
    ]
    if not found:
        return [*lines, f"{NOT_RUN}.", ""]
    for name, figures in sorted(found.items()):
        suites.pop(name)
        by_operation = figures.get("requests by operation", {})
        errors = figures.get("server errors by operation", {})
        violations = figures.get("schema violations by operation", {})
        lines += [f"### {figures.get('control database', name)}", ""]
        lines += [*_table(SCHEMATHESIS_ROWS, figures), "", f"Commit: {figures['commit']}.", ""]
        lines += ["| operation | requests | server errors | schema violations |"]
        lines += ["| --- | --- | --- | --- |"]
        for label, count in sorted(by_operation.items()):
            lines.append(
                f"| `{label}` | {count} | {errors.get(label, 0)} | {violations.get(label, 0)} |"
            )
        details = figures.get("failure details", [])
        lines += ["", f"Failure details: {_cell(details)}.", ""]
    return lines


def _sections(text: str) -> dict[str, list[str]]:
    """A rendered page's ``## `` sections: heading -> its lines (heading included)."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line, [])
        if current is not None:
            current.append(line)
    return sections


def _merge_tests(old: list[str], new: list[str]) -> list[str]:
    """The outcome table with this pass's rows in place of the previous ones of those tests."""
    rows: dict[str, str] = {}
    for line in old + new:
        if line.startswith("| ") and not line.startswith(("| test |", "| --- |")):
            rows[line.split(" | ")[0]] = line
    return [TESTS_HEADING, "", "| test | outcome | seconds |", "| --- | --- | --- |",
            *rows.values(), ""]  # fmt: skip


def render(folder: Path, previous: str | None = None) -> str:
    """The page from the figures in ``folder``; with ``previous`` (the page as it was),
    sections of suites not run in this pass keep their previous figures and the outcome
    table keeps the rows of tests not run."""
    suites = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
    stamped = folder / "commit"  # the commit of a pass whose figures carry none
    fallback = stamped.read_text().strip() if stamped.exists() else _commit()
    for figures in suites.values():
        figures.setdefault("commit", fallback)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# Reliability figures",
        "",
        f"Rendered on {when} (HEAD {_commit()}) by `make soak` from the suites' own",
        "output (tests/reliability/, tests/security/test_schemathesis.py); do not edit by",
        "hand, run `make soak` again. `make fuzz` reruns only the schemathesis pass and",
        "keeps the other sections as they were (each names the commit it was measured at).",
        "`make test` runs the same suites in short versions.",
        "",
    ]
    sections: list[list[str]] = []
    soak = suites.pop("soak", None)
    part = ["## Soak against the emulator (tests/reliability/test_soak.py)", ""]
    if soak is None:
        part += [f"{NOT_RUN}.", ""]
    else:
        part += [
            "Each case may change the profile file or the segment, may expire the access",
            "tokens, then runs `audiencesync exports run` in its own process while the",
            "emulator fails a share of calls (429, 500, 503, connections dropped before or",
            "after doing the work). Some runs are SIGKILLed at a random instant once",
            "recorded; some cases SIGKILL the emulator mid-run and restart it from its",
            "`--state` file. After every run that reports `succeeded`, the emulator's",
            "audience (emails and phones) is compared with the set computed from the file.",
            "",
            *_table(SOAK_ROWS, soak),
            "",
            f"Commit: {soak['commit']}.",
            f"Run statuses: {_cell(soak.get('run_statuses', {}))}.",
            f"Emulator answers by status: {_cell(soak.get('emulator_answers', {}))}.",
            f"Mismatch details: {_cell(soak.get('mismatch_notes', []))}.",
            "",
        ]
    sections.append(part)
    workers = {k: v for k, v in suites.items() if k.startswith("workers-")}
    part = ["## Workers on PostgreSQL under bursts (tests/reliability/test_workers.py)", ""]
    if not workers:
        part += [f"{NOT_RUN} (it needs AUDIENCESYNC_TEST_DATABASE_URL).", ""]
    for name, figures in sorted(workers.items(), key=lambda kv: int(kv[1]["workers"])):
        suites.pop(name)
        part += [f"### {figures['workers']} worker processes", "", *_table(WORKER_ROWS, figures)]
        part += ["", f"Commit: {figures['commit']}.", ""]
    sections.append(part)
    heading = "## schemathesis over the OpenAPI document (tests/security/test_schemathesis.py)"
    sections.append([heading, "", *_schemathesis(suites)])
    sections.append([TESTS_HEADING, "", *_outcomes(folder), ""])
    for name, figures in suites.items():
        part = [f"## {name}", "", "| | |", "| --- | --- |"]
        part += [f"| {key} | {_cell(value)} |" for key, value in sorted(figures.items())]
        sections.append([*part, ""])
    kept = _sections(previous) if previous is not None else {}
    for part in sections:
        old = kept.get(part[0])
        if old is not None and part[0] == TESTS_HEADING:
            part[:] = _merge_tests(old, part)
        elif old is not None and any(line.startswith(NOT_RUN) for line in part):
            part[:] = [*old, ""] if old[-1] else old
        out += part
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str]) -> int:
    merge = "--merge" in argv
    argv = [a for a in argv if a != "--merge"]
    if len(argv) != 2:
        print(
            "usage: python -m tests.reliability.report [--merge] FOLDER OUTPUT.md",
            file=sys.stderr,
        )
        return 2
    output = Path(argv[1])
    previous = output.read_text() if merge and output.exists() else None
    output.write_text(render(Path(argv[0]), previous))
    print(f"wrote {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
