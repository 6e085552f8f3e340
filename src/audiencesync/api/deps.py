"""What API routes depend on: the opened home and the calling user."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated, Literal, cast

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from audiencesync.api.auth import (
    NotSignedInError,
    SessionInfo,
    actor_for_token,
    digest,
    forwarded_client,
    load_session,
)
from audiencesync.control.context import Context
from audiencesync.control.permissions import Actor
from audiencesync.errors import PermissionDeniedError

SESSION_COOKIE = "audiencesync_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: The largest id a record can have: ids are INTEGER columns (32 bits on PostgreSQL),
#: and a larger number in a path answered 500 (schemathesis found it: SQLite beyond 64
#: bits, PostgreSQL beyond 32).
MAX_ID = 2**31 - 1
#: A record's id in a path (a run, a token): 1 to MAX_ID, else 422 with one sentence.
RecordId = Annotated[int, Path(ge=1, le=MAX_ID)]
#: A unified profile's id in a path: a BIGINT in DuckDB, so 1 to 2**63-1, else 422 (a
#: larger number answered 500: DuckDB cannot bind it).
UnifiedId = Annotated[int, Path(ge=1, le=2**63 - 1)]
#: declares the bearer scheme in OpenAPI (Swagger's "Authorize"); the header is read below.
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="APIToken",
    description="A personal API token (create one on your account page).",
)


def same_secret(sent: str, expected: str) -> bool:
    """Constant-time comparison of a secret sent by the client (any text) with ours.

    As bytes: ``secrets.compare_digest`` raises TypeError for non-ASCII ``str``, which
    turned a forged token such as "é" into a 500.
    """
    return secrets.compare_digest(sent.encode(), expected.encode())


def get_context(request: Request) -> Context:
    """The home opened by the app factory."""
    return cast(Context, request.app.state.ctx)


@dataclass(frozen=True)
class Principal:
    """The calling user and how they proved it."""

    actor: Actor
    session: SessionInfo | None
    #: SHA-256 of the API token the request came with (None for a session).
    token_hash: str | None = None

    @property
    def via(self) -> Literal["session", "token"]:
        return "token" if self.session is None else "session"


def find_principal(request: Request) -> Principal | None:
    """The user behind the request's bearer token or session cookie (cached per request)."""
    if hasattr(request.state, "principal"):
        return cast(Principal | None, request.state.principal)
    ctx = get_context(request)
    found: Principal | None = None
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    # Only a Bearer header is a token attempt. Any other scheme (Basic from a proxy in
    # front of the server, Negotiate...) is not ours: the session cookie still counts.
    if scheme.lower() == "bearer":
        actor = actor_for_token(ctx, token.strip())
        if actor is None:
            raise NotSignedInError(
                "the API token is not valid (revoked, expired or mistyped): create a new one "
                "on your account page and send it as 'Authorization: Bearer TOKEN'."
            )
        found = Principal(actor, None, digest(token.strip()))
    elif cookie := request.cookies.get(SESSION_COOKIE):
        session = load_session(ctx, cookie)
        if session is not None:
            found = Principal(session.actor, session)
    request.state.principal = found
    return found


def client_address(request: Request) -> str:
    """The address the sign-in throttle counts attempts of this request under: the peer,
    or what a proxy listed in AUDIENCESYNC_TRUSTED_PROXIES forwarded (X-Forwarded-For)."""
    peer = request.client.host if request.client else "unknown"
    trusted = get_context(request).settings.trusted_proxies
    # Several X-Forwarded-For lines are one list, in order (RFC 9110 5.3): the first line
    # is the client's own, so reading only it would let the client choose its address.
    forwarded = ",".join(request.headers.getlist("x-forwarded-for")) or None
    return forwarded_client(peer, forwarded, trusted)


def api_principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """The calling user; a session also needs its CSRF token on changes."""
    principal = find_principal(request)
    if principal is None:
        raise NotSignedInError(
            "sign in first: send an API token as 'Authorization: Bearer TOKEN' "
            "(create one on your account page), or sign in on the web page."
        )
    if principal.session is not None and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not same_secret(sent, principal.session.csrf_token):
            raise PermissionDeniedError(
                "this change came with a session cookie but without its CSRF token: send the "
                "X-CSRF-Token header, or use an API token."
            )
    return principal


def api_actor(principal: Annotated[Principal, Depends(api_principal)]) -> Actor:
    return principal.actor


Ctx = Annotated[Context, Depends(get_context)]
CurrentActor = Annotated[Actor, Depends(api_actor)]
CurrentPrincipal = Annotated[Principal, Depends(api_principal)]
