"""Snapchat's rows of the retry table, and the policy built from settings."""

from __future__ import annotations

from typing import Literal

import httpx
import orjson

from audiencesync.errors import (
    DestinationError,
    DestinationNotFoundError,
    DestinationPermissionError,
    ReauthenticationRequiredError,
)
from audiencesync.http import Action, ErrorDetail, RetryPolicy, Rule
from audiencesync.settings import Settings

PLATFORM = "Snapchat"

_ROLES_HINT = (
    "give them the Data Manager (or Account Admin) role on that ad account, and the Member "
    "role in its organization, in Snapchat Business Manager, then run it again"
)

#: Marketing API rows, ahead of :data:`audiencesync.http.DEFAULT_RULES`.
API_RULES: tuple[Rule, ...] = (
    Rule(
        Action.FAIL,
        DestinationPermissionError,
        "the Snapchat user of this connection lacks access to {target} (403 E3002 on {method} "
        "{path}): " + _ROLES_HINT + ".",
        status=403,
        error_code="E3002",
    ),
    Rule(
        Action.FAIL,
        DestinationPermissionError,
        "Snapchat refused {method} {path} on {target} (403{detail}): the Snapchat user of "
        "this connection probably lacks access; " + _ROLES_HINT + ".",
        status=403,
    ),
    Rule(
        Action.FAIL,
        DestinationNotFoundError,
        "Snapchat does not know {target} ({error_code} on {method} {path}{detail}): check the "
        "id in the export's settings, or let audiencesync create the audience again.",
        error_code="E3003",
    ),
)

GrantType = Literal["authorization_code", "refresh_token"]

_BAD_CLIENT = (
    "Snapchat refused the OAuth app's credentials ({error_code}{detail}): check "
    "AUDIENCESYNC_SNAPCHAT_CLIENT_ID and AUDIENCESYNC_SNAPCHAT_CLIENT_SECRET."
)


def token_rules(grant_type: GrantType) -> tuple[Rule, ...]:
    """Rows for the token endpoint, whose errors are RFC 6749 JSON (status 400 or 401)."""
    if grant_type == "refresh_token":
        invalid_grant = Rule(
            Action.FAIL,
            ReauthenticationRequiredError,
            "Snapchat refused this connection's refresh token (invalid_grant: revoked, expired "
            "or already used): an administrator must re-authenticate connection {connection} "
            "(sign in to Snapchat again).",
            error_code="invalid_grant",
        )
    else:
        invalid_grant = Rule(
            Action.FAIL,
            DestinationError,
            "Snapchat refused the authorization code (invalid_grant: expired, already used, or "
            "issued for another redirect URI): start the Snapchat login again.",
            error_code="invalid_grant",
        )
    return (
        invalid_grant,
        Rule(Action.FAIL, DestinationError, _BAD_CLIENT, error_code="invalid_client"),
        Rule(Action.FAIL, DestinationError, _BAD_CLIENT, error_code="unauthorized_client"),
        Rule(Action.FAIL, DestinationError, _BAD_CLIENT, status=401),
        Rule(
            Action.FAIL,
            DestinationError,
            "Snapchat's token endpoint rejected the request ({error_code}{detail}): check "
            "AUDIENCESYNC_SNAPCHAT_REDIRECT_URI and the OAuth app's settings at Snapchat.",
            status=range(400, 500),
        ),
    )


def snapchat_policy(settings: Settings | None = None) -> RetryPolicy:
    """The Marketing API policy, its knobs from ``settings`` (defaults when ``None``)."""
    base = RetryPolicy(platform=PLATFORM)
    if settings is not None:
        base = RetryPolicy(
            platform=PLATFORM,
            max_attempts=settings.http_max_attempts,
            max_rate_limited_attempts=settings.http_max_rate_limited_attempts,
            backoff_base_seconds=settings.http_backoff_base_seconds,
            backoff_max_seconds=settings.http_backoff_max_seconds,
            retry_after_max_seconds=settings.http_retry_after_max_seconds,
        )
    return base.with_rules(API_RULES)


def _json_object(response: httpx.Response) -> dict[str, object]:
    try:
        payload = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def describe_api_error(response: httpx.Response) -> ErrorDetail:
    """Snap's error envelope; nothing from a 401, whose body Snap does not keep stable."""
    if response.status_code == 401:
        return ErrorDetail()
    body = _json_object(response)
    return ErrorDetail(
        error_code=_text(body.get("error_code")),
        message=_text(body.get("display_message")) or _text(body.get("debug_message")),
        request_id=_text(body.get("request_id")),
    )


def describe_token_error(response: httpx.Response) -> ErrorDetail:
    """RFC 6749 error JSON (``error``, ``error_description``) from the token endpoint."""
    body = _json_object(response)
    return ErrorDetail(
        error_code=_text(body.get("error")),
        message=_text(body.get("error_description")),
    )
