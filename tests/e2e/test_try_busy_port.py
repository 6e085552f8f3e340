"""`audiencesync try` on a port another program holds: one sentence, not uvicorn's
"[Errno 98] error while attempting to bind" after the emulator started (issue 14)."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.cli_runner import run_cli


def test_try_on_a_busy_port_says_so_in_one_sentence(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_cli(
            "try", "--home", str(tmp_path / "try"), "--port", str(port), home=tmp_path / "h",
            timeout=60,
        )  # fmt: skip
    assert result.code == 2, result.output
    assert result.stderr.strip() == (
        f"error: port {port} on 127.0.0.1 is already in use (another `audiencesync try` or "
        "`serve`?): stop that, or give --port another number."
    )
    assert "Traceback" not in result.output
    assert "Errno" not in result.output
    assert not (tmp_path / "try").exists()  # nothing was started or created
