"""Helpers for tests that connect audiencesync to the emulator."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import SecretStr

from audiencesync.cli.walkthrough import connect_through_emulator
from audiencesync.control.context import Context
from audiencesync.control.permissions import Actor
from audiencesync.emulator.testing import EmulatorHandle
from audiencesync.profiles import store
from audiencesync.segments import service as segments
from audiencesync.segments.rules import parse_rules
from audiencesync.settings import Settings
from audiencesync.sync import connections
from audiencesync.sync.connections import ConnectionView


def emulator_settings(settings: Settings, emulator: EmulatorHandle) -> Settings:
    """``settings`` pointed at the emulator (the two base URLs and the OAuth app)."""
    return settings.model_copy(
        update={
            "snapchat_api_url": emulator.api_url,
            "snapchat_auth_url": emulator.auth_url,
            "snapchat_client_id": emulator.client_id,
            "snapchat_client_secret": SecretStr(emulator.client_secret),
            "snapchat_redirect_uri": "http://127.0.0.1:9/oauth/callback",
            "http_backoff_base_seconds": 0.01,
            "http_backoff_max_seconds": 0.05,
        }
    )


def sign_in(ctx: Context, admin: Actor) -> tuple[connections.Authorization, str, str]:
    """Start the OAuth flow and approve it as the browser would; (authorization, code, state)."""
    authorization = connections.start_authorization(ctx, admin)
    answer = httpx.get(authorization.url, follow_redirects=False, timeout=30)
    assert answer.status_code in (302, 303), answer.text
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    return authorization, query["code"][0], query["state"][0]


def connect(
    ctx: Context, admin: Actor, name: str = "Snap", *, share: bool = False
) -> ConnectionView:
    """A Snapchat connection made through the emulator's authorize page (the demo's steps)."""
    return connect_through_emulator(ctx, admin, name, share=share)


PROFILES_CSV = (
    "customer_id,email,phone,country,age\n"
    "1,Ann@Example.com ,+1 (415) 555-0101,US,34\n"
    "2,bob@example.org,,GB,51\n"
    "3,not-an-email,0044 7700 900123,GB,29\n"
    "4,dora@example.net,+33 6 12 34 56 78,FR,62\n"
)


def load_profiles(ctx: Context, actor: Actor, tmp_path: Path, text: str = PROFILES_CSV) -> None:
    """Dataset ``customers`` plus segments ``everyone`` and ``adults_gb``."""
    source = tmp_path / "customers.csv"
    source.write_text(text)
    store.import_file(ctx, actor, source, key="customer_id", name="customers")
    segments.create_segment(
        ctx, actor, "everyone", dataset="customers",
        rules=parse_rules({"field": "customer_id", "op": "is not null"}),
    )  # fmt: skip
    segments.create_segment(
        ctx, actor, "gb", dataset="customers",
        rules=parse_rules({"field": "country", "op": "=", "value": "GB"}),
    )  # fmt: skip
