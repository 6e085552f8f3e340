"""One timed run for ``audiencesync bench``, in its own process so its memory is its own.

``python -m audiencesync.cli.bench_run EXPORT`` reads the usual ``AUDIENCESYNC_*``
settings, runs the export once and prints ``{"seconds", "peak_rss_bytes", "run_id"}`` as
JSON. It imports only the engine, not the command line or the web server.
"""

from __future__ import annotations

import json
import resource
import sys
import time

from audiencesync.control import users
from audiencesync.control.context import Context
from audiencesync.settings import load_settings
from audiencesync.sync import runs


def main() -> None:
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
