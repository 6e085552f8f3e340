"""``audiencesync emulator``: a local Snapchat Marketing API for tests and demos."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from audiencesync.emulator import config as defaults
from audiencesync.errors import UserInputError


def run(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on.")
    ] = defaults.DEFAULT_HOST,
    port: Annotated[
        int, typer.Option("--port", help="Port to listen on; 0 picks a free one.")
    ] = defaults.DEFAULT_PORT,
    auto_approve: Annotated[
        bool,
        typer.Option(
            "--auto-approve", help="Skip the approval page: redirect with a code at once."
        ),
    ] = False,
    token_ttl: Annotated[
        float, typer.Option("--token-ttl", help="Seconds an access token lives.")
    ] = defaults.DEFAULT_TOKEN_TTL_SECONDS,
    match_rate: Annotated[
        float, typer.Option("--match-rate", help="Share of uploaded ids that match (0 to 1).")
    ] = defaults.DEFAULT_MATCH_RATE,
    processing_seconds: Annotated[
        float, typer.Option("--processing-seconds", help="Seconds an upload stays PROCESSING.")
    ] = defaults.DEFAULT_PROCESSING_SECONDS,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state", help="SQLite file keeping state across restarts (default: memory)."
        ),
    ] = None,
    client_id: Annotated[
        str, typer.Option("--client-id", help="The OAuth app's client id.")
    ] = defaults.DEFAULT_CLIENT_ID,
    client_secret: Annotated[
        str, typer.Option("--client-secret", help="The OAuth app's client secret.")
    ] = defaults.DEFAULT_CLIENT_SECRET,
    redirect_uri: Annotated[
        list[str] | None,
        typer.Option(
            "--redirect-uri", metavar="URI", help="A registered redirect URI (repeatable)."
        ),
    ] = None,
    allow_loopback_redirects: Annotated[
        bool,
        typer.Option(
            "--allow-loopback-redirects/--registered-redirects-only",
            help=(
                "Also accept any http://127.0.0.1, [::1] or localhost redirect URI, any port "
                "(RFC 8252), as `serve` and the CLI use; or only the --redirect-uri ones."
            ),
        ),
    ] = True,
    rate_limit: Annotated[
        float, typer.Option("--rate-limit", help="Requests per second per access token; 0 = off.")
    ] = defaults.DEFAULT_RATE_LIMIT,
    fail_429: Annotated[
        float, typer.Option("--fail-429", help="Share of Ads API calls answered 429.")
    ] = 0.0,
    fail_500: Annotated[float, typer.Option("--fail-500", help="Share answered 500.")] = 0.0,
    fail_503: Annotated[float, typer.Option("--fail-503", help="Share answered 503.")] = 0.0,
    drop: Annotated[
        float, typer.Option("--drop", help="Share of Ads API calls whose connection is dropped.")
    ] = 0.0,
    retry_after: Annotated[
        int | None,
        typer.Option("--retry-after", help="Retry-After seconds sent with injected 429s."),
    ] = None,
    latency_ms: Annotated[
        int, typer.Option("--latency-ms", help="Milliseconds added to every Ads API call.")
    ] = 0,
    fault_seed: Annotated[int, typer.Option("--fault-seed", help="Seed of the fault draws.")] = 0,
) -> None:
    """Serve a local Snapchat Marketing API until Ctrl-C (see docs/emulator.md)."""
    from audiencesync.emulator.app import Emulator
    from audiencesync.emulator.persistence import SnapshotError
    from audiencesync.emulator.server import bind, serve_forever, url_of

    try:
        config = defaults.EmulatorConfig.from_options(
            host=host,
            port=port,
            auto_approve=auto_approve,
            token_ttl=token_ttl,
            match_rate=match_rate,
            processing_seconds=processing_seconds,
            state_path=state,
            client_id=client_id,
            client_secret=client_secret,
            redirect_uris=redirect_uri or [defaults.DEFAULT_REDIRECT_URI],
            allow_loopback_redirects=allow_loopback_redirects,
            rate_limit=rate_limit,
            fail_429=fail_429,
            fail_500=fail_500,
            fail_503=fail_503,
            drop=drop,
            retry_after=retry_after,
            latency_ms=latency_ms,
            seed=fault_seed,
        )
        emulator = Emulator(config)
    except ValueError as error:
        raise UserInputError(f"emulator: {error}") from None
    except SnapshotError as error:
        raise UserInputError(f"{error}: pass another --state file.") from None
    try:
        sock = bind(host, port)
    except OSError as error:
        raise UserInputError(
            f"cannot listen on {host}:{port} ({error.strerror}): pass another --port, or 0."
        ) from None
    url = url_of(sock)
    from audiencesync.emulator.store import AD_ACCOUNT_ID, ORGANIZATION_ID, OTHER_AD_ACCOUNT_ID

    secret_shown = (
        client_secret if client_secret == defaults.DEFAULT_CLIENT_SECRET else "(as given)"
    )
    redirects = ", ".join(config.redirect_uris)
    if allow_loopback_redirects:
        redirects += " and any loopback URI"
    restored = "restored from" if emulator.loaded_from_state else "new, saved to"
    lines = [
        f"emulator listening on {url}",
        f"  auth and API base URL: {url}",
        f"  client id:             {client_id}",
        f"  client secret:         {secret_shown}",
        f"  redirect URIs:         {redirects}",
        f"  organization:          {ORGANIZATION_ID}",
        f"  ad account:            {AD_ACCOUNT_ID}",
        f"  other ad account:      {OTHER_AD_ACCOUNT_ID} (no access: 403 E3002)",
        f"  state:                 {f'{restored} {state}' if state else 'in memory'}",
        f"  control:               {url}/_emulator/state",
        f"  use it:                AUDIENCESYNC_SNAPCHAT_API_URL={url} "
        f"AUDIENCESYNC_SNAPCHAT_AUTH_URL={url}",
        "Press Ctrl-C to stop.",
    ]
    for line in lines:
        typer.echo(line)
    with contextlib.suppress(KeyboardInterrupt):
        serve_forever(emulator, sock)
    typer.echo("emulator stopped" + (f"; state saved to {state}" if state else "."))
