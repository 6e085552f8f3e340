"""``audiencesync serve``, ``audiencesync worker`` and ``audiencesync schedule ...``."""

from __future__ import annotations

import importlib.util
import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from audiencesync.cli.common import actor, console, opened
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


def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address of the web UI and API.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port of the web UI and API.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="Worker threads for runs.")] = 1,
) -> None:
    """Run the web UI and REST API, the scheduler and a worker."""
    with opened() as ctx:
        stop = threading.Event()
        threads = [
            threading.Thread(target=scheduler_loop, args=(ctx, stop), name="scheduler", daemon=True)
        ]
        for number in range(max(1, workers)):
            threads.append(
                threading.Thread(
                    target=worker_loop, args=(ctx, stop),
                    kwargs={"worker": f"{worker_name()}:{number}"},
                    name=f"worker-{number}", daemon=True,
                )
            )  # fmt: skip
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
                console.print(
                    f"audiencesync on http://{host}:{port} (scheduler and worker running)"
                )
                uvicorn.run(web.create_app(ctx.settings), host=host, port=port, log_level="warning")
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
    state = "on" if view.enabled else "off"
    console.print(f"system refresh: {state}, cron {view.cron!r} ({view.timezone})")
    if view.next_run_at:
        console.print(f"next: {view.next_run_at:%Y-%m-%d %H:%M %Z}")
    if view.last_fired_at:
        console.print(f"last: {view.last_fired_at:%Y-%m-%d %H:%M} UTC")


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
    console.print(
        f"system refresh {'on' if view.enabled else 'off'}: {view.cron!r} ({view.timezone})"
    )
