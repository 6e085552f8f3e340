"""Shared steps of the demo and the benchmark: a home wired to a local emulator."""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import SecretStr

from audiencesync.control import users
from audiencesync.control.context import Context
from audiencesync.control.db import Database
from audiencesync.control.permissions import Actor
from audiencesync.emulator.testing import EmulatorHandle
from audiencesync.settings import Settings
from audiencesync.sync import connections
from audiencesync.sync.connections import ConnectionView


def emulator_home(home: Path, emulator: EmulatorHandle, **knobs: object) -> Settings:
    """Settings for ``home`` with the two Snapchat base URLs pointed at ``emulator``."""
    return Settings(
        home=home,
        database_url=None,
        snapchat_api_url=emulator.api_url,
        snapchat_auth_url=emulator.auth_url,
        snapchat_client_id=emulator.client_id,
        snapchat_client_secret=SecretStr(emulator.client_secret),
        snapchat_redirect_uri="http://127.0.0.1:8765/oauth/callback",
        **knobs,  # type: ignore[arg-type]
    )


def open_new_home(settings: Settings) -> tuple[Context, Actor, str]:
    """Initialise ``settings.home`` with an administrator; (context, admin, password)."""
    settings.resolved_home.mkdir(parents=True, exist_ok=True)
    database = Database(settings.control_database_url)
    database.migrate()
    database.dispose()
    ctx = Context.open(settings)
    password = secrets.token_urlsafe(12)
    users.create_first_admin(ctx, "admin", password)
    return ctx, users.resolve_actor(ctx, "admin"), password


def connect_through_emulator(
    ctx: Context, admin: Actor, name: str, *, share: bool = True
) -> ConnectionView:
    """The seed's connection steps, with the emulator approving the sign-in."""
    authorization = connections.start_authorization(ctx, admin)
    answer = httpx.get(authorization.url, follow_redirects=False, timeout=30)
    query = parse_qs(urlsplit(answer.headers.get("location", "")).query)
    tokens = connections.finish_authorization(
        ctx, admin, authorization,
        code=query.get("code", [""])[0], state=query.get("state", [""])[0],
    )  # fmt: skip
    return connections.create_snapchat_connection(
        ctx, admin, name, share_with_contributors=share, agreed=True, tokens=tokens
    )
