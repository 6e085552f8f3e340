"""Run the real ``audiencesync`` program in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(
    *args: str,
    home: Path,
    input_text: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> CliResult:
    """Run ``audiencesync ARGS`` with AUDIENCESYNC_HOME=home; never raises on a non-zero exit."""
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith("AUDIENCESYNC_") or "TEST" in k
    }
    environment["AUDIENCESYNC_HOME"] = str(home)
    environment["COLUMNS"] = "200"
    environment.update(env or {})
    completed = subprocess.run(
        [sys.executable, "-m", "audiencesync", *args],
        input=input_text,
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
        check=False,
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)
