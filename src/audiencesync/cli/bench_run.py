"""One timed run for ``audiencesync bench``, in its own process so its memory is its own.

``python -m audiencesync.cli.bench_run EXPORT`` reads the usual ``AUDIENCESYNC_*``
settings, runs the export once and prints ``{"seconds", "peak_rss_bytes", "run_id"}`` as
JSON. ``python -m audiencesync.cli.bench_run --members SEGMENT FIELD...`` only reads the
segment's members (as the export's members phase does) and prints ``{"seconds",
"first_batch_seconds", "members", "peak_rss_bytes"}``. It imports only the engine, not
the command line or the web server.
"""

from __future__ import annotations

import json
import resource
import sys
import time

from audiencesync.control import users
from audiencesync.control.context import Context
from audiencesync.segments.membership import stream_members
from audiencesync.settings import load_settings
from audiencesync.sync import runs


def members() -> None:
    ctx = Context.open(load_settings())
    try:
        started = time.perf_counter()
        first = None
        count = 0
        with stream_members(ctx, [sys.argv[2]], sys.argv[3:]) as stream:
            for batch in stream:
                if first is None:
                    first = time.perf_counter() - started
                count += batch.num_rows
        seconds = time.perf_counter() - started
    finally:
        ctx.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    figures = {"seconds": seconds, "first_batch_seconds": first, "members": count}
    sys.stdout.write(json.dumps({**figures, "peak_rss_bytes": peak}))


def main() -> None:
    if sys.argv[1] == "--members":
        members()
        return
    ctx = Context.open(load_settings())
    try:
        admin = users.resolve_actor(ctx, None)
        started = time.perf_counter()
        view = runs.run_now(ctx, admin, sys.argv[1])
        seconds = time.perf_counter() - started
    finally:
        ctx.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    sys.stdout.write(json.dumps({"seconds": seconds, "peak_rss_bytes": peak, "run_id": view.id}))


if __name__ == "__main__":
    main()
