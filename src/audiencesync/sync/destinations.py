"""Opening a connection's destination: decrypted tokens in, rotated tokens persisted.

The engine and the services get a :class:`Destination` for a connection from here. The
tokens are decrypted only inside this module and the client; a refresh that rotates the
refresh token is written back encrypted at once; a refused refresh (``invalid_grant``)
marks the connection "needs re-authentication" so its exports say so plainly.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from audiencesync.control import audit
from audiencesync.control.context import Context
from audiencesync.control.models import Secret, utcnow
from audiencesync.control.ratebudget import budgets_for
from audiencesync.control.sync_models import Connection
from audiencesync.destinations.base import (
    AccountInfo,
    AudienceInfo,
    BatchResult,
    Destination,
    Hashes,
)
from audiencesync.destinations.snapchat.client import SnapchatClient
from audiencesync.destinations.snapchat.destination import SnapchatDestination
from audiencesync.destinations.snapchat.oauth import TokenSet
from audiencesync.errors import NotFoundError, ReauthenticationRequiredError
from audiencesync.sync import alerts
from audiencesync.types import IdentifierType

NEEDS_REAUTH = "needs_reauth"
ACTIVE = "active"

T = TypeVar("T")

#: After a refused refresh, the pauses (seconds) between looks at the stored tokens for
#: a refresh token another worker rotated but had not yet committed (3.75 s in all).
REFUSED_REFRESH_WAITS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)


def pause(seconds: float) -> None:
    """The sleep of those waits when none is given (looked up at each call, so tests
    that drive the engine replace it here)."""
    time.sleep(seconds)


def token_owner(connection_id: int) -> str:
    return f"connection:{connection_id}:tokens"


def save_tokens(session: Session, ctx: Context, connection_id: int, tokens: TokenSet) -> None:
    """Write ``tokens`` encrypted, in ``session`` (it commits with the caller's change)."""
    owner = token_owner(connection_id)
    ciphertext = ctx.secrets.encrypt(json.dumps(tokens.to_dict()))
    secret = session.scalar(select(Secret).where(Secret.owner == owner))
    if secret is None:
        session.add(Secret(owner=owner, ciphertext=ciphertext))
    else:
        secret.ciphertext = ciphertext
        secret.updated_at = utcnow()


def delete_tokens(session: Session, connection_id: int) -> None:
    secret = session.scalar(select(Secret).where(Secret.owner == token_owner(connection_id)))
    if secret is not None:
        session.delete(secret)


def load_tokens(ctx: Context, connection_id: int) -> TokenSet:
    with ctx.db.session() as session:
        secret = session.scalar(select(Secret).where(Secret.owner == token_owner(connection_id)))
        if secret is None:
            raise NotFoundError("this connection has no stored tokens: re-authenticate it.")
        return TokenSet.from_dict(json.loads(ctx.secrets.decrypt(secret.ciphertext)))


def mark_needs_reauth(
    ctx: Context, connection_id: int, reason: str, *, defer_alerts: bool = False
) -> None:
    """Record that the connection's refresh token was refused; alert once per transition.

    The change is conditional, so of several processes meeting the refusal one makes
    the transition and raises the alert. ``defer_alerts`` leaves it pending for the run
    to send after its outcome is recorded.
    """
    with ctx.db.session() as session:
        changed = session.execute(
            update(Connection)
            .where(Connection.id == connection_id, Connection.status != NEEDS_REAUTH)
            .values(status=NEEDS_REAUTH, last_error=reason)
        )
        if int(getattr(changed, "rowcount", 0)) != 1:
            return
        name = session.scalar(select(Connection.name).where(Connection.id == connection_id))
        audit.record(session, "system", "connection.needs_reauth", f"connection:{name}")
    alerts.connection_needs_reauth(ctx, connection_id, defer=defer_alerts)


def _client(
    ctx: Context, tokens: TokenSet, on_tokens: Callable[[TokenSet], None], name: str
) -> SnapchatClient:
    budgets = budgets_for(ctx.db, ctx.settings.http_requests_per_second, ctx.secrets.digest)
    return SnapchatClient.from_settings(
        ctx.settings, tokens, on_tokens, connection_name=name, budgets=budgets
    )


def check_tokens(
    ctx: Context, tokens: TokenSet, on_tokens: Callable[[TokenSet], None] | None = None
) -> AccountInfo:
    """Who fresh tokens belong to and what they reach (before a connection is saved).

    The checks may refresh the tokens, and Snap rotates the refresh token when it does:
    each new set goes to ``on_tokens``, and the caller must save the last one it got,
    or the connection is saved with a refresh token that no longer works.
    """
    holder: list[TokenSet] = [tokens]

    def keep(new: TokenSet) -> None:
        holder.append(new)
        if on_tokens is not None:
            on_tokens(new)

    destination = SnapchatDestination(_client(ctx, tokens, keep, "NAME"))
    try:
        return destination.check_connection()
    finally:
        destination.close()


class ConnectionDestination:
    """A connection's destination: persists rotated tokens, marks refused refreshes."""

    _inner: SnapchatDestination

    def __init__(
        self,
        ctx: Context,
        connection: Connection,
        *,
        defer_alerts: bool = False,
        sleep: Callable[[float], None] | None = None,
        refused_refresh_waits: Sequence[float] = REFUSED_REFRESH_WAITS,
    ) -> None:
        self._ctx = ctx
        self._defer_alerts = defer_alerts
        self._sleep: Callable[[float], None] = sleep or (lambda seconds: pause(seconds))
        self._waits = tuple(refused_refresh_waits)
        self._connection_id = connection.id
        self.connection_name = connection.name
        #: one refusal at a time: concurrent pushes refused together wait once, not each.
        self._refusal = threading.Lock()
        #: counters of clients replaced by ``_open`` after a token rotation.
        self._earlier: dict[str, int] = {}
        self._open(load_tokens(ctx, connection.id))
        self.max_batch_size = self._inner.max_batch_size

    def _open(self, tokens: TokenSet) -> None:
        if hasattr(self, "_inner"):
            for name, number in self._inner.request_counters().items():
                self._earlier[name] = self._earlier.get(name, 0) + number
        self._client = _client(self._ctx, tokens, self._persist, self.connection_name)
        self._inner = SnapchatDestination(self._client)

    def _persist(self, tokens: TokenSet) -> None:
        with self._ctx.db.session() as session:
            save_tokens(session, self._ctx, self._connection_id, tokens)

    def _guard(self, call: Callable[[], T]) -> T:
        used = self._client.tokens.refresh_token
        try:
            return call()
        except ReauthenticationRequiredError as first:
            refused = first
        with self._refusal:
            if self._client.tokens.refresh_token != used:
                # A concurrent push already opened newer tokens while this one waited.
                try:
                    return call()
                except ReauthenticationRequiredError as again:
                    refused = again
            return self._after_refusal(call, refused)

    def _after_refusal(self, call: Callable[[], T], refused: ReauthenticationRequiredError) -> T:
        # Another process (a second worker, the web server) may have refreshed and rotated
        # the refresh token since this one loaded it, and may not have committed the new
        # one yet when Snap refused ours: look at the stored tokens now and a few times
        # over a short wait, and try again with any newer refresh token, before telling
        # anyone to sign in again. Concurrent pushes of one run come here one at a time,
        # so the second finds the mark the first made and does not wait again.
        # Already marked (by an earlier refusal): no newer tokens are coming, no wait.
        waits = () if self._marked() else self._waits
        for seconds in (0.0, *waits):
            if seconds:
                self._sleep(seconds)
            stored = load_tokens(self._ctx, self._connection_id)
            if stored.refresh_token == self._client.tokens.refresh_token:
                continue
            self._inner.close()
            self._open(stored)
            try:
                return call()
            except ReauthenticationRequiredError as again:
                refused = again
        mark_needs_reauth(
            self._ctx, self._connection_id, refused.message, defer_alerts=self._defer_alerts
        )
        raise refused

    def _marked(self) -> bool:
        with self._ctx.db.session() as session:
            row = session.get(Connection, self._connection_id)
            return row is not None and row.status == NEEDS_REAUTH

    def check_connection(self) -> AccountInfo:
        return self._guard(lambda: self._inner.check_connection())

    def describe_audience(self, audience_id: str) -> AudienceInfo:
        return self._guard(lambda: self._inner.describe_audience(audience_id))

    def create_audience(
        self, ad_account_id: str, name: str, *, description: str = "", retention_days: int = 9999
    ) -> AudienceInfo:
        return self._guard(
            lambda: self._inner.create_audience(
                ad_account_id, name, description=description, retention_days=retention_days
            )
        )

    def list_audiences(self, ad_account_id: str) -> list[AudienceInfo]:
        return self._guard(lambda: self._inner.list_audiences(ad_account_id))

    def add_batch(
        self, audience_id: str, identifier_type: IdentifierType, hashes: Hashes
    ) -> BatchResult:
        return self._guard(lambda: self._inner.add_batch(audience_id, identifier_type, hashes))

    def remove_batch(
        self, audience_id: str, identifier_type: IdentifierType, hashes: Hashes
    ) -> BatchResult:
        return self._guard(lambda: self._inner.remove_batch(audience_id, identifier_type, hashes))

    def clear(self, audience_id: str) -> None:
        self._guard(lambda: self._inner.clear(audience_id))

    def request_counters(self) -> dict[str, int]:
        now = self._inner.request_counters()
        return {name: now.get(name, 0) + self._earlier.get(name, 0) for name in now}

    def close(self) -> None:
        self._inner.close()


def open_destination(
    ctx: Context,
    connection: Connection,
    *,
    defer_alerts: bool = False,
    sleep: Callable[[float], None] | None = None,
) -> ConnectionDestination:
    """The destination behind ``connection``; call ``close()`` when done.

    ``defer_alerts``: alerts it raises wait for :func:`alerts.deliver_pending` (a run
    sends them after recording its outcome). ``sleep``: the waits after a refused refresh.
    """
    return ConnectionDestination(ctx, connection, defer_alerts=defer_alerts, sleep=sleep)


def _conforms(destination: ConnectionDestination) -> Destination:
    return destination  # mypy proves ConnectionDestination implements the protocol
