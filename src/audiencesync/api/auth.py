"""Who is calling: personal API tokens, browser sessions, sign-in throttle, OAuth state.

Secrets handed to users (API tokens, session cookies) are random and stored as their
SHA-256 only, so the control database never holds one that works. OAuth tokens waiting
for the "Save" step of a new connection are encrypted with the home's key.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from audiencesync.control import audit, users
from audiencesync.control.context import Context
from audiencesync.control.models import User, utcnow
from audiencesync.control.permissions import Actor
from audiencesync.control.web_models import (
    ApiToken,
    LoginThrottle,
    PendingAuthorization,
    WebSession,
)
from audiencesync.destinations.snapchat.oauth import TokenSet
from audiencesync.errors import (
    AudiencesyncError,
    NotFoundError,
    PermissionDeniedError,
    UserInputError,
)
from audiencesync.sync import connections
from audiencesync.sync.connections import Authorization

TOKEN_PREFIX = "as_"  # noqa: S105 (a prefix that marks audiencesync tokens)
SESSION_IDLE = timedelta(hours=12)
SESSION_MAX_AGE = timedelta(days=7)
OAUTH_PENDING_TTL = timedelta(minutes=15)
#: failed sign-ins allowed per user name, and per client address, within the window.
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_ADDRESS = 30
THROTTLE_WINDOW = timedelta(minutes=15)
THROTTLE_BLOCK = timedelta(minutes=15)
_TOUCH_EVERY = timedelta(minutes=1)


class NotSignedInError(AudiencesyncError):
    """No valid session cookie or API token came with the request."""

    http_status = 401


class SignInThrottledError(PermissionDeniedError):
    """Too many failed sign-ins: wait before trying again."""

    http_status = 429


def digest(secret: str) -> str:
    """The SHA-256 (hex) a secret is stored and looked up by."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


# --- personal API tokens ------------------------------------------------------------


@dataclass(frozen=True)
class TokenView:
    """A token as its owner sees it after creation: never the token itself."""

    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


@dataclass(frozen=True)
class NewToken:
    """A token just created: ``token`` is shown this once and never again."""

    token: str = field(repr=False)
    view: TokenView


def _token_view(row: ApiToken) -> TokenView:
    return TokenView(row.id, row.name, row.prefix, row.created_at, row.last_used_at, row.expires_at)


#: The longest life a personal API token may be given, in days.
MAX_TOKEN_DAYS = 3650
TOKEN_DAYS_RANGE = f"a token expires after 1 to {MAX_TOKEN_DAYS} days, or never (leave it empty)."


def create_token(
    ctx: Context, actor: Actor, name: str, *, expires_in_days: int | None = None
) -> NewToken:
    """A new personal API token for ``actor``; the caller shows ``token`` once."""
    label = name.strip()
    if not label or len(label) > 100:
        raise UserInputError(
            "give the token a name of 1 to 100 characters, e.g. 'nightly script'.", field="name"
        )
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_TOKEN_DAYS:
        raise UserInputError(TOKEN_DAYS_RANGE, field="expires_in_days")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    expires = now + timedelta(days=expires_in_days) if expires_in_days else None
    with ctx.db.session() as session:
        row = ApiToken(
            user_id=actor.id,
            name=label,
            token_hash=digest(token),
            prefix=token[:10],
            created_at=now,
            expires_at=expires,
        )
        session.add(row)
        audit.record(
            session, actor, "api_token.create", f"user:{actor.name}",
            after={"name": label, "prefix": row.prefix},
        )  # fmt: skip
        session.flush()
        return NewToken(token, _token_view(row))


def list_tokens(ctx: Context, actor: Actor) -> list[TokenView]:
    """The acting user's own tokens, newest first."""
    with ctx.db.session() as session:
        rows = session.scalars(
            select(ApiToken).where(ApiToken.user_id == actor.id).order_by(ApiToken.id.desc())
        )
        return [_token_view(r) for r in rows]


def revoke_token(ctx: Context, actor: Actor, token_id: int) -> None:
    """Revoke one of the acting user's own tokens; it stops working at once."""
    with ctx.db.session() as session:
        row = session.get(ApiToken, token_id)
        if row is None or row.user_id != actor.id:
            raise NotFoundError(f"you have no API token with id {token_id}.")
        audit.record(
            session, actor, "api_token.revoke", f"user:{actor.name}",
            before={"name": row.name, "prefix": row.prefix},
        )  # fmt: skip
        session.delete(row)


def actor_for_token(ctx: Context, token: str) -> Actor | None:
    """The owner of a valid, unexpired API token, or None."""
    now = utcnow()
    with ctx.db.session() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(token)))
        if row is None or (row.expires_at is not None and row.expires_at <= now):
            return None
        user = session.get(User, row.user_id)
        if user is None:
            return None
        if row.last_used_at is None or now - row.last_used_at > _TOUCH_EVERY:
            row.last_used_at = now
        return users.actor_of(user)


# --- browser sessions ---------------------------------------------------------------


@dataclass
class SessionInfo:
    """A signed-in browser: who, its CSRF token, and its small per-session state."""

    id_hash: str
    actor: Actor
    csrf_token: str
    data: dict[str, Any]


def start_session(ctx: Context, actor: Actor) -> tuple[str, SessionInfo]:
    """A new session for ``actor``: (the cookie value, the session)."""
    cookie = secrets.token_urlsafe(32)
    now = utcnow()
    info = SessionInfo(digest(cookie), actor, secrets.token_urlsafe(32), {})
    with ctx.db.session() as session:
        session.execute(delete(WebSession).where(WebSession.expires_at < now))
        session.add(
            WebSession(
                id_hash=info.id_hash,
                user_id=actor.id,
                csrf_token=info.csrf_token,
                created_at=now,
                last_seen_at=now,
                expires_at=now + SESSION_IDLE,
                data={},
            )
        )
    return cookie, info


def load_session(ctx: Context, cookie: str) -> SessionInfo | None:
    """The live session of a cookie value (its idle expiry pushed back), or None."""
    now = utcnow()
    with ctx.db.session() as session:
        row = session.get(WebSession, digest(cookie))
        if row is None:
            return None
        if row.expires_at <= now or now - row.created_at > SESSION_MAX_AGE:
            session.delete(row)
            return None
        user = session.get(User, row.user_id)
        if user is None:
            return None
        if now - row.last_seen_at > _TOUCH_EVERY:
            row.last_seen_at = now
            row.expires_at = min(now + SESSION_IDLE, row.created_at + SESSION_MAX_AGE)
        return SessionInfo(row.id_hash, users.actor_of(user), row.csrf_token, dict(row.data or {}))


def save_session_data(ctx: Context, info: SessionInfo) -> None:
    """Write ``info.data`` back to the session row."""
    with ctx.db.session() as session:
        row = session.get(WebSession, info.id_hash)
        if row is not None:
            row.data = dict(info.data)


def end_session(ctx: Context, cookie: str) -> None:
    """Sign out: the session's cookie stops working at once."""
    with ctx.db.session() as session:
        session.execute(delete(WebSession).where(WebSession.id_hash == digest(cookie)))


def check_current_password(ctx: Context, actor: Actor, password: str, *, address: str) -> None:
    """Before a user changes their own password: is this their current one?

    Counted by the sign-in throttle like a sign-in, so a stolen session or token cannot
    be used to guess the password either. Raises PermissionDeniedError or
    SignInThrottledError.
    """
    if not password:
        raise UserInputError(
            "give your current password too: it is needed to change it.",
            field="current_password",
        )
    try:
        sign_in(ctx, actor.name, password, address=address)
    except SignInThrottledError:
        raise
    except PermissionDeniedError:
        raise PermissionDeniedError(
            "your current password is not that: type it again (nothing was changed).",
            field="current_password",
        ) from None


# --- sign-in throttle ---------------------------------------------------------------


def parse_trusted_proxies(setting: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """AUDIENCESYNC_TRUSTED_PROXIES (addresses or networks, ','-separated) as networks."""
    networks = []
    for part in (p.strip() for p in setting.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise UserInputError(
                f"AUDIENCESYNC_TRUSTED_PROXIES holds {part[:60]!r}, which is not an address or a "
                "network such as 10.0.0.0/8: fix the setting."
            ) from None
    return networks


def _trusted(address: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def forwarded_client(peer: str, forwarded_for: str | None, trusted_proxies: str) -> str:
    """The client address the throttle counts: the peer, unless the peer is a trusted
    proxy; then the right-most X-Forwarded-For address that is not a trusted proxy."""
    networks = parse_trusted_proxies(trusted_proxies)
    if not forwarded_for or not networks or not _trusted(peer, networks):
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        if not _trusted(hop, networks):
            return hop
    return peer


def _upsert(session: Session, key: str, now: datetime) -> tuple[int, datetime, datetime | None]:
    """Count one attempt on ``key`` in one statement (insert, or add one): its row after.

    The statement locks the row (PostgreSQL) or the database (SQLite) until the commit, so
    parallel attempts are counted one after another and none of them is lost.
    """
    values = {"key": key, "failures": 1, "first_failure_at": now, "blocked_until": None}
    add_one = {"failures": LoginThrottle.failures + 1}
    dialect = session.get_bind().dialect.name
    statement: Any
    if dialect == "postgresql":
        pg = postgresql.insert(LoginThrottle).values(values)
        statement = pg.on_conflict_do_update(index_elements=[LoginThrottle.key], set_=add_one)
    elif dialect == "sqlite":
        lite = sqlite.insert(LoginThrottle).values(values)
        statement = lite.on_conflict_do_update(index_elements=[LoginThrottle.key], set_=add_one)
    else:  # pragma: no cover - the control database is SQLite or PostgreSQL
        raise NotImplementedError(f"no sign-in throttle for {dialect} databases")
    row = session.execute(
        statement.returning(
            LoginThrottle.failures, LoginThrottle.first_failure_at, LoginThrottle.blocked_until
        )
    ).one()
    failures: int = row[0]
    first: datetime = row[1]
    blocked: datetime | None = row[2]
    return failures, first, blocked


def _count_attempt(session: Session, key: str, limit: int, now: datetime) -> datetime | None:
    """Count a sign-in attempt before its password is checked; when blocked, until when.

    Every attempt counts as a failure until it succeeds (then :func:`sign_in` takes it
    back), so ``limit`` guesses in parallel are all that get a password check.
    """
    failures, first, blocked = _upsert(session, key, now)
    if blocked is not None and blocked > now:
        return blocked
    where = LoginThrottle.key == key
    if now - first > THROTTLE_WINDOW:  # the window is over: this attempt starts a new one
        session.execute(
            update(LoginThrottle).where(where)
            .values(failures=1, first_failure_at=now, blocked_until=None)
        )  # fmt: skip
        failures = 1
    if failures > limit:
        until = now + THROTTLE_BLOCK
        session.execute(update(LoginThrottle).where(where).values(blocked_until=until))
        return until
    return None


def sign_in(ctx: Context, name: str, password: str, *, address: str) -> Actor:
    """The user with this name and password, unless too many sign-ins failed lately.

    The attempt is counted (per user name and per address) before the password is
    checked, and taken back when it was right: a burst of parallel guesses gets no more
    checks than the limit. Raises PermissionDeniedError (wrong name or password) or
    SignInThrottledError.
    """
    keys = ((f"user:{name.strip().lower()}", MAX_FAILURES_PER_USER),
            (f"address:{address}", MAX_FAILURES_PER_ADDRESS))  # fmt: skip
    now = utcnow()
    with ctx.db.session() as session:
        # Always in this order (user, then address), so two attempts never wait on each other.
        blocks = [_count_attempt(session, key, limit, now) for key, limit in keys]
    until = max((u for u in blocks if u is not None), default=None)
    if until is not None:
        minutes = max(1, round((until - now).total_seconds() / 60))
        raise SignInThrottledError(
            f"too many failed sign-ins: wait {minutes} minute(s) and try again, "
            "or ask an administrator to reset your password."
        )
    actor = users.authenticate(ctx, name, password)  # a wrong password stays counted
    with ctx.db.session() as session:
        session.execute(delete(LoginThrottle).where(LoginThrottle.key == keys[0][0]))
        session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.key == keys[1][0], LoginThrottle.failures > 0)
            .values(failures=LoginThrottle.failures - 1)
        )
    return actor


# --- "Authenticate with Snapchat" -----------------------------------------------------


#: where a Snapchat sign-in is started and finished: the REST API, or a browser session.
Channel = Literal["api", "browser"]
API: Channel = "api"
BROWSER: Channel = "browser"
_ELSEWHERE = {
    API: "this Snapchat sign-in was started through the API, not on the web page: finish it "
    "with the API (POST /api/v1/connections with its state).",
    BROWSER: "this Snapchat sign-in was started on the web page, not through the API: finish "
    "it in the browser that started it.",
}
_USED = (
    "this Snapchat sign-in already came back once and cannot be used again: save the "
    "connection, or start the authentication again."
)


def begin_authorization(
    ctx: Context, actor: Actor, redirect_uri: str, *, channel: Channel
) -> Authorization:
    """Start the OAuth sign-in (administrators only) and remember its state, hashed.

    Only the same ``channel`` can finish it: a state started in a browser session is
    refused by the API's callback, and the other way round.
    """
    authorization = connections.start_authorization(ctx, actor, redirect_uri=redirect_uri)
    now = utcnow()
    with ctx.db.session() as session:
        session.execute(delete(PendingAuthorization).where(PendingAuthorization.expires_at < now))
        session.add(
            PendingAuthorization(
                state_hash=digest(authorization.state),
                user_id=actor.id,
                redirect_uri=authorization.redirect_uri,
                created_at=now,
                expires_at=now + OAUTH_PENDING_TTL,
                channel=channel,
            )
        )
    return authorization


def _pending(session: Session, state: str, now: datetime, channel: Channel) -> PendingAuthorization:
    row = session.get(PendingAuthorization, digest(state)) if state else None
    if row is None or row.expires_at <= now:
        raise PermissionDeniedError(
            "this Snapchat sign-in is unknown or too old: start the authentication again."
        )
    if row.channel != channel:
        raise PermissionDeniedError(_ELSEWHERE[API if row.channel == API else BROWSER])
    return row


def finish_callback(
    ctx: Context,
    *,
    code: str,
    state: str,
    channel: Channel,
    expected_state: str | None = None,
    actor: Actor | None = None,
) -> Actor:
    """Exchange the redirect's code for tokens and keep them, encrypted, for the save step.

    ``channel`` must be the one the sign-in was started in. ``expected_state`` is the
    state this browser session started (required for the browser channel); ``actor``,
    when given, must be the user who started the sign-in. A sign-in whose tokens are
    already kept is refused: a replayed state can never overwrite them. Returns the user
    who started it.
    """
    if channel == BROWSER and not expected_state:
        raise PermissionDeniedError(_ELSEWHERE[BROWSER])
    now = utcnow()
    with ctx.db.session() as session:
        row = _pending(session, expected_state or state, now, channel)
        if row.tokens_encrypted is not None:
            raise PermissionDeniedError(_USED)
        owner = session.get(User, row.user_id)
        if owner is None or (actor is not None and actor.id != owner.id):
            raise PermissionDeniedError(
                "this Snapchat sign-in was started by another user: start it again yourself."
            )
        started_by = users.actor_of(owner)
        authorization = Authorization(
            state=expected_state or state, url="", redirect_uri=row.redirect_uri
        )
    tokens = connections.finish_authorization(
        ctx, started_by, authorization, code=code, state=state
    )
    with ctx.db.session() as session:
        # Only the first callback stores tokens, even when two race past the check above.
        stored = session.execute(
            update(PendingAuthorization)
            .where(
                PendingAuthorization.state_hash == digest(state),
                PendingAuthorization.channel == channel,
                PendingAuthorization.tokens_encrypted.is_(None),
                PendingAuthorization.expires_at > now,
            )
            .values(tokens_encrypted=ctx.secrets.encrypt(json.dumps(tokens.to_dict())))
        )
        if cast(CursorResult[Any], stored).rowcount != 1:
            raise PermissionDeniedError(_USED)
    return started_by


def pending_tokens(ctx: Context, actor: Actor, state: str, *, channel: Channel) -> TokenSet:
    """The tokens of a finished sign-in ``actor`` started (kept until :func:`discard`)."""
    now = utcnow()
    with ctx.db.session() as session:
        row = _pending(session, state, now, channel)
        if row.user_id != actor.id:
            raise PermissionDeniedError(
                "this Snapchat sign-in was started by another user: start it again yourself."
            )
        if row.tokens_encrypted is None:
            raise UserInputError(
                "the Snapchat sign-in has not come back yet: approve the access on Snapchat's "
                "page first, then save."
            )
        return TokenSet.from_dict(json.loads(ctx.secrets.decrypt(row.tokens_encrypted)))


def keep_pending_tokens(ctx: Context, state: str, tokens: TokenSet, *, channel: Channel) -> None:
    """Replace a finished sign-in's kept tokens (rotated by a refresh before the save)."""
    with ctx.db.session() as session:
        session.execute(
            update(PendingAuthorization)
            .where(
                PendingAuthorization.state_hash == digest(state),
                PendingAuthorization.channel == channel,
                PendingAuthorization.tokens_encrypted.is_not(None),
            )
            .values(tokens_encrypted=ctx.secrets.encrypt(json.dumps(tokens.to_dict())))
        )


def discard(ctx: Context, state: str, *, channel: Channel) -> None:
    """Forget a sign-in started in ``channel`` (used up, or abandoned)."""
    with ctx.db.session() as session:
        session.execute(
            delete(PendingAuthorization).where(
                PendingAuthorization.state_hash == digest(state),
                PendingAuthorization.channel == channel,
            )
        )


def cancel_unfinished(ctx: Context, state: str, *, channel: Channel) -> bool:
    """Forget a sign-in that has not come back with tokens (Snapchat said no).

    The anonymous callback uses this: a denial can end only a sign-in still waiting, never
    one whose tokens are kept for the save step. Returns whether one was cancelled.
    """
    with ctx.db.session() as session:
        result = session.execute(
            delete(PendingAuthorization).where(
                PendingAuthorization.state_hash == digest(state),
                PendingAuthorization.channel == channel,
                PendingAuthorization.tokens_encrypted.is_(None),
            )
        )
        return bool(getattr(result, "rowcount", 0))


def tokens_ready(ctx: Context, state: str, *, channel: Channel) -> bool:
    """Whether the sign-in started in ``channel`` with ``state`` came back with tokens."""
    with ctx.db.session() as session:
        row = session.get(PendingAuthorization, digest(state)) if state else None
        return row is not None and row.channel == channel and row.tokens_encrypted is not None
