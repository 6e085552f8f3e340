"""Snapchat Marketing API: OAuth, a thread-safe client, and the engine-facing destination."""

from __future__ import annotations

from audiencesync.destinations.snapchat.client import MAX_IDS_PER_REQUEST, SnapchatClient
from audiencesync.destinations.snapchat.destination import SCHEMAS, SnapchatDestination
from audiencesync.destinations.snapchat.models import (
    Organization,
    Schema,
    Segment,
    SnapAdAccount,
    SnapUser,
    UploadResult,
)
from audiencesync.destinations.snapchat.oauth import (
    OAuthApp,
    TokenSet,
    authorize_url,
    exchange_code,
    new_state,
    refresh_tokens,
)
from audiencesync.destinations.snapchat.policy import snapchat_policy

__all__ = [
    "MAX_IDS_PER_REQUEST",
    "SCHEMAS",
    "OAuthApp",
    "Organization",
    "Schema",
    "Segment",
    "SnapAdAccount",
    "SnapUser",
    "SnapchatClient",
    "SnapchatDestination",
    "TokenSet",
    "UploadResult",
    "authorize_url",
    "exchange_code",
    "new_state",
    "refresh_tokens",
    "snapchat_policy",
]
