"""OAuth 2 authorization-code flow against Snapchat's accounts server.

``authorize_url`` sends the user to Snapchat with a random ``state``; the redirect brings
back a ``code`` that :func:`exchange_code` turns into a :class:`TokenSet`; the client
keeps it fresh with :func:`refresh_tokens`. Tokens never appear in a repr or a log line.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
import orjson

from audiencesync.destinations.snapchat.policy import (
    GrantType,
    describe_token_error,
    snapchat_policy,
    token_rules,
)
from audiencesync.errors import DestinationError, NotSetUpError
from audiencesync.http import Call, Clock, RetryingSender, RetryPolicy, SystemClock
from audiencesync.settings import Settings

AUTHORIZE_PATH = "/login/oauth2/authorize"
TOKEN_PATH = "/login/oauth2/access_token"  # noqa: S105 (a path, not a secret)
SCOPE = "snapchat-marketing-api"
#: used when the token endpoint omits ``expires_in`` (Snap documents about 30 minutes).
DEFAULT_EXPIRES_IN_SECONDS = 1800
#: a token is refreshed ahead of expiry by the configured margin, but never earlier than
#: this share of its lifetime: a token living less than the margin would otherwise be
#: refreshed on every call (and, as Snap rotates refresh tokens, each time rotated).
MAX_REFRESH_MARGIN_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class OAuthApp:
    """The OAuth app registered at Snapchat; its secret stays out of ``repr``."""

    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str
    auth_base_url: str = "https://accounts.snapchat.com"

    @classmethod
    def from_settings(cls, settings: Settings) -> OAuthApp:
        """The app from ``AUDIENCESYNC_SNAPCHAT_*``; NotSetUpError when credentials are unset."""
        if not settings.snapchat_client_id or settings.snapchat_client_secret is None:
            raise NotSetUpError(
                "the Snapchat OAuth app is not configured: set AUDIENCESYNC_SNAPCHAT_CLIENT_ID "
                "and AUDIENCESYNC_SNAPCHAT_CLIENT_SECRET to the app's credentials."
            )
        return cls(
            client_id=settings.snapchat_client_id,
            client_secret=settings.snapchat_client_secret.get_secret_value(),
            redirect_uri=settings.snapchat_redirect_uri,
            auth_base_url=settings.snapchat_auth_url,
        )

    @property
    def token_url(self) -> str:
        return self.auth_base_url.rstrip("/") + TOKEN_PATH


@dataclass(frozen=True, slots=True, repr=False)
class TokenSet:
    """An access token, the refresh token that renews it, and when the access token expires.

    ``lifetime_seconds`` is the ``expires_in`` the token was issued with (``None`` for
    tokens stored before it was kept); it caps the refresh margin (:meth:`refresh_due`).
    """

    access_token: str
    refresh_token: str
    expires_at: datetime
    scope: str = ""
    lifetime_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.expires_at.tzinfo is None:
            raise ValueError("TokenSet.expires_at must be timezone-aware (UTC)")

    def __repr__(self) -> str:
        return (
            f"TokenSet(access_token='***', refresh_token='***', "
            f"expires_at={self.expires_at.isoformat()!r}, scope={self.scope!r}, "
            f"lifetime_seconds={self.lifetime_seconds!r})"
        )

    def expires_within(self, seconds: float, now: datetime) -> bool:
        """True when the access token is expired or expires in the next ``seconds``."""
        return self.expires_at - timedelta(seconds=seconds) <= now

    def refresh_margin(self, margin_seconds: float) -> float:
        """``margin_seconds``, capped to :data:`MAX_REFRESH_MARGIN_SHARE` of the lifetime.

        A lifetime of 0 or less (a server saying ``expires_in: 0``) gives no margin: the
        token is refreshed once it has expired, not before every call.
        """
        if self.lifetime_seconds is None:
            return margin_seconds
        if self.lifetime_seconds <= 0:
            return 0.0
        return min(margin_seconds, self.lifetime_seconds * MAX_REFRESH_MARGIN_SHARE)

    def refresh_due(self, margin_seconds: float, now: datetime) -> bool:
        """Whether to refresh now: expired, or within the (capped) margin of expiry.

        A token of 5 s with a 120 s margin is refreshed once it is 2.5 s old, once in
        its lifetime, not on every call.
        """
        return self.expires_within(self.refresh_margin(margin_seconds), now)

    def to_dict(self) -> dict[str, str]:
        """A JSON-able form for the caller's encrypted token store."""
        data = {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at.isoformat(),
            "scope": self.scope,
        }
        if self.lifetime_seconds is not None:
            data["lifetime_seconds"] = repr(self.lifetime_seconds)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> TokenSet:
        """The inverse of :meth:`to_dict` (also of its older form, without a lifetime)."""
        lifetime = data.get("lifetime_seconds")
        return cls(
            access_token=data["access_token"],
            refresh_token=data["refresh_token"],
            expires_at=datetime.fromisoformat(data["expires_at"]).astimezone(UTC),
            scope=data.get("scope", ""),
            lifetime_seconds=float(lifetime) if lifetime is not None else None,
        )


def new_state() -> str:
    """A random, URL-safe ``state`` to bind the redirect to the login that started it."""
    return secrets.token_urlsafe(32)


def authorize_url(app: OAuthApp, state: str) -> str:
    """Where to send the user's browser to log in to Snapchat and approve the app."""
    query = urlencode(
        {
            "client_id": app.client_id,
            "redirect_uri": app.redirect_uri,
            "response_type": "code",
            "scope": SCOPE,
            "state": state,
        }
    )
    return f"{app.auth_base_url.rstrip('/')}{AUTHORIZE_PATH}?{query}"


def exchange_code(
    app: OAuthApp,
    code: str,
    http: httpx.Client | None = None,
    *,
    policy: RetryPolicy | None = None,
    clock: Clock | None = None,
) -> TokenSet:
    """Trade the redirect's ``code`` for tokens.

    Raises DestinationError when Snapchat refuses the code or the app's credentials; a
    code is single-use, so only failures that surely did not reach Snapchat are retried.
    """
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "redirect_uri": app.redirect_uri,
    }
    return _token_request(app, form, None, http, policy, clock, "NAME")


def refresh_tokens(
    app: OAuthApp,
    refresh_token: str,
    http: httpx.Client | None = None,
    *,
    policy: RetryPolicy | None = None,
    clock: Clock | None = None,
    connection_name: str = "NAME",
) -> TokenSet:
    """New tokens from a refresh token; keeps ``refresh_token`` when Snapchat does not rotate it.

    Raises ReauthenticationRequiredError (never retried) on ``invalid_grant``: the user
    must reconnect with ``audiencesync connections reauth <connection_name>``.
    Transient failures are retried per ``policy``, then raised as retryable errors.
    """
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": app.client_id,
        "client_secret": app.client_secret,
    }
    return _token_request(app, form, refresh_token, http, policy, clock, connection_name)


def _token_request(
    app: OAuthApp,
    form: dict[str, str],
    previous_refresh_token: str | None,
    http: httpx.Client | None,
    policy: RetryPolicy | None,
    clock: Clock | None,
    connection_name: str,
) -> TokenSet:
    grant_type: GrantType = (
        "refresh_token" if form["grant_type"] == "refresh_token" else "authorization_code"
    )
    clock = clock or SystemClock()
    owned = http is None
    client = http if http is not None else httpx.Client(timeout=60.0)
    try:
        sender = RetryingSender(
            client,
            (policy or snapchat_policy()).with_rules(token_rules(grant_type)),
            clock,
            describe_error=describe_token_error,
            connection_name=connection_name,
        )
        request = client.build_request(
            "POST", app.token_url, data=form, headers={"Accept": "application/json"}
        )
        call = Call(
            request,
            path=TOKEN_PATH,
            target="the OAuth app",
            # A refresh may be repeated (the worst case is the invalid_grant it would meet
            # anyway); an authorization code is single-use.
            idempotent=grant_type == "refresh_token",
            note=f"grant_type={grant_type}",
        )
        response = sender.send(call)
        return _parse_tokens(response, previous_refresh_token, clock.now())
    finally:
        if owned:
            client.close()


def _parse_tokens(
    response: httpx.Response, previous_refresh_token: str | None, now: datetime
) -> TokenSet:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise DestinationError(
            "Snapchat's token endpoint answered without an access token: check "
            "AUDIENCESYNC_SNAPCHAT_AUTH_URL points at Snapchat's accounts server.",
            status=response.status_code,
        )
    refresh = body.get("refresh_token")
    if not isinstance(refresh, str) or not refresh:
        if previous_refresh_token is None:
            raise DestinationError(
                "Snapchat's token endpoint answered without a refresh token: the connection "
                "could not be saved; start the Snapchat login again.",
                status=response.status_code,
            )
        refresh = previous_refresh_token
    try:
        seconds = float(body.get("expires_in", DEFAULT_EXPIRES_IN_SECONDS))
    except (TypeError, ValueError):
        seconds = float(DEFAULT_EXPIRES_IN_SECONDS)
    if not math.isfinite(seconds) or seconds < 0:
        seconds = float(DEFAULT_EXPIRES_IN_SECONDS)
    scope = body.get("scope")
    return TokenSet(
        access_token=body["access_token"],
        refresh_token=refresh,
        expires_at=now + timedelta(seconds=seconds),
        scope=scope if isinstance(scope, str) else "",
        lifetime_seconds=seconds,
    )
