"""``audiencesync serve``, ``audiencesync worker`` and ``audiencesync schedule ...``."""

from __future__ import annotations

import importlib.util
import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from audiencesync.api.auth import parse_trusted_proxies
from audiencesync.cli.common import actor, console, opened, state
from audiencesync.control.context import Context
from audiencesync.sync import schedule as schedule_service
from audiencesync.sync.runs import worker_name
from audiencesync.sync.scheduler import scheduler_loop, worker_loop

schedule_app = typer.Typer(
    help="The system refresh schedule (off by default).", no_args_is_help=True
)


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def background_threads(
    ctx: Context, stop: threading.Event, *, workers: int
) -> list[threading.Thread]:
    """The scheduler and ``workers`` worker threads ``serve`` runs (not started yet)."""
    threads = [
        threading.Thread(target=scheduler_loop, args=(ctx, stop), name="scheduler", daemon=True)
    ]
    for number in range(workers):
        threads.append(
            threading.Thread(
                target=worker_loop, args=(ctx, stop),
                kwargs={"worker": f"{worker_name()}:{number}"},
                name=f"worker-{number}", daemon=True,
            )
        )  # fmt: skip
    return threads


def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address of the web UI and API.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port of the web UI and API.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", min=0, help="Worker threads for runs (0: none; run `worker` elsewhere)."
        ),
    ] = 1,
) -> None:
    """Run the web UI and REST API, the scheduler and a worker."""
    # A bad setting stops the start, rather than every sign-in answering 400 later.
    parse_trusted_proxies(state.get_settings().trusted_proxies)
    with opened() as ctx:
        stop = threading.Event()
        threads = background_threads(ctx, stop, workers=workers)
        for thread in threads:
            thread.start()
        try:
            if importlib.util.find_spec("audiencesync.web.app") is None:
                console.print(
                    "scheduler and worker running (the web UI is not built yet); Ctrl-C stops."
                )
                _stop_on_signals(stop)
                stop.wait()
            else:
                import uvicorn

                web = importlib.import_module("audiencesync.web.app")
                running = (
                    f"{workers} worker(s)" if workers else "no worker: run `audiencesync worker`"
                )
                console.print(f"audiencesync on http://{host}:{port} (scheduler, {running})")
                # X-Forwarded-For is read by the app, from AUDIENCESYNC_TRUSTED_PROXIES only.
                uvicorn.run(
                    web.create_app(ctx.settings), host=host, port=port, log_level="warning",
                    proxy_headers=False,
                )  # fmt: skip
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)


def worker(
    idle: Annotated[float, typer.Option("--idle-seconds", help="Wait between empty polls.")] = 1.0,
) -> None:
    """Run queued export runs (start several, on a shared PostgreSQL control database)."""
    with opened() as ctx:
        stop = threading.Event()
        _stop_on_signals(stop)
        console.print(f"worker {worker_name()} waiting for runs; Ctrl-C stops.")
        worker_loop(ctx, stop, idle_seconds=idle)


@schedule_app.command("show")
def schedule_show() -> None:
    """Show the system refresh schedule."""
    with opened() as ctx:
        view = schedule_service.get_schedule(ctx, actor(ctx))
    console.print(f"system refresh: {view.words}", markup=False)
    console.print(f"cron: {view.cron!r} ({view.timezone})", markup=False)
    last = schedule_service.when_words(view.last_refresh_at) if view.last_refresh_at else "never"
    console.print(f"last refresh: {last}", markup=False)


@schedule_app.command("refresh")
def schedule_refresh() -> None:
    """Run the system refresh now (re-import, count segments, queue the exports that
    follow it), whether its schedule is on or off. Administrators only."""
    from audiencesync.sync.scheduler import refresh_now

    with opened() as ctx:
        result = refresh_now(ctx, actor(ctx))
    console.print(
        f"system refresh ran: {len(result.refreshed)} dataset(s) re-imported, "
        f"{len(result.evaluated)} segment(s) counted, {len(result.queued)} export(s) queued "
        "(a running `audiencesync serve` or `worker` runs them).",
        markup=False,
    )
    for problem in result.problems:
        console.print(f"problem: {problem}", markup=False)


@schedule_app.command("set")
def schedule_set(
    cron: Annotated[str, typer.Argument(help="Cron expression, e.g. '0 3 * * *'.")],
    timezone: Annotated[str, typer.Option("--timezone", help="Time zone of the cron.")] = "UTC",
    off: Annotated[bool, typer.Option("--off", help="Keep the schedule but turn it off.")] = False,
) -> None:
    """Set (and turn on) the system refresh schedule. Administrators only."""
    with opened() as ctx:
        view = schedule_service.set_schedule(
            ctx, actor(ctx), enabled=not off, cron=cron, timezone=timezone
        )
    console.print(f"system refresh: {view.words}", markup=False)
