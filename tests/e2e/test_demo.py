"""`make demo`'s closing hints are commands that work as printed, and it speaks in words."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from audiencesync.cli.demo import held_in_words

pytestmark = pytest.mark.slow


def test_held_counts_read_as_words() -> None:
    counts = {"EMAIL_SHA256": 6577, "PHONE_SHA256": 1, "MOBILE_AD_ID_SHA256": 1000}
    assert held_in_words(counts) == "6,577 emails, 1 phone, 1,000 mobile ad ids"
    assert held_in_words({}) == "nothing"


def test_the_demos_explore_hints_run_as_printed(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIENCESYNC_")}
    home = tmp_path / "home"
    demo = subprocess.run(
        [sys.executable, "-m", "audiencesync", "demo", "--profiles", "2000", "--keep", str(home)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "{" not in demo.stdout.split("Explore")[-1], demo.stdout
    held = re.search(r"held ([\d,]+) emails, ([\d,]+) phones, ([\d,]+) mobile ad ids", demo.stdout)
    assert held, demo.stdout
    lines = [line.strip() for line in demo.stdout.splitlines()]
    hints = [line for line in lines if line.startswith("AUDIENCESYNC_HOME=")]
    assert len(hints) == 2, demo.stdout
    # The runs' "reads it again" hints name the demo's home too (the default home holds
    # nothing of the demo), and are run like the others.
    later = re.findall(r"reads it again in a minute and after: `([^`]+)`", demo.stdout)
    assert later, demo.stdout
    assert all(hint.startswith(f"AUDIENCESYNC_HOME={home} ") for hint in later), later
    hints.append(later[0])
    # The browser hint is `audiencesync try` (its own emulator and OAuth app), never a
    # `serve` on the demo's home, whose emulator has stopped and whose OAuth app is unset.
    assert " serve" not in demo.stdout.split("Explore")[-1], demo.stdout
    program, verb = shlex.split(lines[-1])
    assert (Path(program).is_file(), verb) == (True, "try"), lines[-1]
    for hint in hints:
        assignment, *command = shlex.split(hint)
        name, _, value = assignment.partition("=")
        assert Path(command[0]).is_file(), command
        result = subprocess.run(
            command, env={**env, name: value}, capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip
        assert result.returncode == 0, (hint, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
