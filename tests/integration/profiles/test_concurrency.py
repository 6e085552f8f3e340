"""Server, scheduler and CLI run in separate processes: none fails on a file lock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from audiencesync.control.context import Context
from audiencesync.control.models import Role
from audiencesync.control.permissions import Actor
from audiencesync.profiles import store

WRITER = """
import sys
from pathlib import Path
from audiencesync.control.context import Context
from audiencesync.control.users import resolve_actor
from audiencesync.profiles import store
from audiencesync.settings import Settings

ctx = Context.open(Settings(home=Path(sys.argv[1])))
admin = resolve_actor(ctx, None)
for n in range(2, 14):
    source = Path(sys.argv[2])
    source.write_text("id,v\\n" + "".join(f"{i},x\\n" for i in range(n * 1000)))
    store.import_file(ctx, admin, source, key="id", name="live")
print("writer done")
"""

READER = """
import sys, time
from pathlib import Path
from audiencesync.control.context import Context
from audiencesync.control.users import resolve_actor
from audiencesync.profiles import store
from audiencesync.settings import Settings

ctx = Context.open(Settings(home=Path(sys.argv[1])))
viewer = resolve_actor(ctx, "victor")
seen = set()
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    view = store.get_dataset(ctx, viewer, "live")
    table = store.sample(ctx, viewer, "live", limit=1_000_000)
    # Every read sees one whole version: a multiple of 1,000 rows, never a torn file.
    assert table.num_rows % 1000 == 0, table.num_rows
    seen.add(table.num_rows)
    if table.num_rows == 13000 and view.row_count == 13000:
        break
print("reader saw", len(seen), "versions")
"""


def test_import_in_one_process_while_another_reads(
    sqlite_ctx: Context, sqlite_actors: dict[Role, Actor], tmp_path: Path
) -> None:
    source = tmp_path / "live.csv"
    source.write_text("id,v\n" + "".join(f"{i},x\n" for i in range(1000)))
    store.import_file(sqlite_ctx, sqlite_actors[Role.ADMIN], source, key="id", name="live")
    home = str(sqlite_ctx.home)
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WRITER), home, str(source)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    reader = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(READER), home],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    w_out, w_err = writer.communicate(timeout=120)
    r_out, r_err = reader.communicate(timeout=120)
    assert writer.returncode == 0, w_err
    assert reader.returncode == 0, r_err
    assert "writer done" in w_out
    assert "reader saw" in r_out
    assert store.get_dataset(sqlite_ctx, sqlite_actors[Role.ADMIN], "live").row_count == 13000
