"""Opening a connection's destination: decrypted tokens in, rotated tokens persisted.

The engine and the services get a :class:`Destination` for a connection from here. The
tokens are decrypted only inside this module and the client; a refresh that rotates the
refresh token is written back encrypted at once; a refused refresh (``invalid_grant``)
marks the connection "needs re-authentication" so its exports say so plainly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from audiencesync.control import audit
from audiencesync.control.context import Context
from audiencesync.control.models import Secret, utcnow
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
from audiencesync.types import IdentifierType

NEEDS_REAUTH = "needs_reauth"
ACTIVE = "active"

T = TypeVar("T")


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


def mark_needs_reauth(ctx: Context, connection_id: int, reason: str) -> None:
    """Record that the connection's refresh token was refused."""
    with ctx.db.session() as session:
        row = session.get(Connection, connection_id)
        if row is not None and row.status != NEEDS_REAUTH:
            row.status = NEEDS_REAUTH
            row.last_error = reason
            audit.record(session, "system", "connection.needs_reauth", f"connection:{row.name}")


def _client(
    ctx: Context, tokens: TokenSet, on_tokens: Callable[[TokenSet], None], name: str
) -> SnapchatClient:
    return SnapchatClient.from_settings(ctx.settings, tokens, on_tokens, connection_name=name)


def check_tokens(ctx: Context, tokens: TokenSet) -> AccountInfo:
    """Who fresh tokens belong to and what they reach (before a connection is saved)."""
    holder: list[TokenSet] = [tokens]
    destination = SnapchatDestination(_client(ctx, tokens, holder.append, "NAME"))
    try:
        return destination.check_connection()
    finally:
        destination.close()


class ConnectionDestination:
    """A connection's destination: persists rotated tokens, marks refused refreshes."""

    def __init__(self, ctx: Context, connection: Connection) -> None:
        self._ctx = ctx
        self._connection_id = connection.id
        self.connection_name = connection.name
        self._open(load_tokens(ctx, connection.id))
        self.max_batch_size = self._inner.max_batch_size

    def _open(self, tokens: TokenSet) -> None:
        self._client = _client(self._ctx, tokens, self._persist, self.connection_name)
        self._inner = SnapchatDestination(self._client)

    def _persist(self, tokens: TokenSet) -> None:
        with self._ctx.db.session() as session:
            save_tokens(session, self._ctx, self._connection_id, tokens)

    def _guard(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except ReauthenticationRequiredError as first:
            refused = first
        # Another process (a second worker, the web server) may have refreshed and rotated
        # the refresh token since this one loaded it: take the stored one and try once
        # more before telling anyone to sign in again.
        stored = load_tokens(self._ctx, self._connection_id)
        if stored.refresh_token != self._client.tokens.refresh_token:
            self._inner.close()
            self._open(stored)
            try:
                return call()
            except ReauthenticationRequiredError as second:
                refused = second
        mark_needs_reauth(self._ctx, self._connection_id, refused.message)
        raise refused

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

    def close(self) -> None:
        self._inner.close()


def open_destination(ctx: Context, connection: Connection) -> ConnectionDestination:
    """The destination behind ``connection``; call ``close()`` when done."""
    return ConnectionDestination(ctx, connection)


def _conforms(destination: ConnectionDestination) -> Destination:
    return destination  # mypy proves ConnectionDestination implements the protocol
