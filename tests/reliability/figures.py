"""Figures a reliability suite measured, kept as JSON for ``docs/reliability.md``.

A suite writes ``<AUDIENCESYNC_RELIABILITY_REPORT_DIR>/<name>.json`` when the variable is
set (``make soak`` sets it); :mod:`tests.reliability.report` renders them.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

REPORT_DIR = "AUDIENCESYNC_RELIABILITY_REPORT_DIR"
#: The commit the pass started at (read when the suites are collected): a long pass may
#: outlive later commits in the same checkout, and its figures are the code it loaded.
_COMMIT = subprocess.run(
    ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False,
    cwd=Path(__file__).parent,
).stdout.strip()  # fmt: skip


def record(name: str, figures: dict[str, Any]) -> Path | None:
    """Write ``figures`` as ``name``.json in the report folder; None when none is set."""
    folder = os.environ.get(REPORT_DIR)
    if not folder:
        return None
    figures = {"commit": _COMMIT or "unknown", **figures}
    path = Path(folder) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2, sort_keys=True, default=str) + "\n")
    return path
