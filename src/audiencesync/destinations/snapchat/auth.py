"""Keeps one connection's tokens fresh for many threads: one refresh at a time."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from audiencesync.destinations.snapchat.oauth import TokenSet
from audiencesync.errors import AudiencesyncError, ReauthenticationRequiredError
from audiencesync.http import Clock

logger = logging.getLogger(__name__)


class TokenKeeper:
    """A :class:`audiencesync.http.TokenSource` over a refresh function.

    Refreshes ahead of expiry (``margin_seconds``, capped to a share of the token's
    lifetime: :meth:`TokenSet.refresh_due`) and when a request is answered 401.
    Refreshes are serialized by a lock; a thread that waited re-checks whether another
    thread already replaced the token and, if so, uses the new one without calling
    Snapchat. Each new :class:`TokenSet` goes to ``on_tokens`` (to be persisted: the
    refresh token may rotate). Once Snapchat refuses the refresh token, every later call
    fails the same way without asking Snapchat again.
    """

    def __init__(
        self,
        tokens: TokenSet,
        refresh: Callable[[str], TokenSet],
        on_tokens: Callable[[TokenSet], None],
        clock: Clock,
        margin_seconds: float,
    ) -> None:
        self._tokens = tokens
        self._refresh = refresh
        self._on_tokens = on_tokens
        self._clock = clock
        self._margin = margin_seconds
        self._lock = threading.Lock()
        self._refused: ReauthenticationRequiredError | None = None

    @property
    def tokens(self) -> TokenSet:
        return self._tokens

    def _expiring(self, tokens: TokenSet) -> bool:
        return tokens.refresh_due(self._margin, self._clock.now())

    def access_token(self) -> str:
        tokens = self._tokens
        if not self._expiring(tokens):
            return tokens.access_token
        with self._lock:
            self._raise_if_refused()
            current = self._tokens
            if current.access_token != tokens.access_token and not self._expiring(current):
                return current.access_token
            try:
                return self._replace(current).access_token
            except AudiencesyncError as exc:
                # Inside the margin the old token still works: use it while Snapchat's
                # token endpoint recovers, rather than failing the call.
                if exc.retryable and not current.expires_within(0, self._clock.now()):
                    logger.warning("token refresh failed (%s); using the current token", exc)
                    return current.access_token
                raise

    def refresh(self, rejected: str) -> None:
        with self._lock:
            self._raise_if_refused()
            current = self._tokens
            if current.access_token != rejected:
                return
            self._replace(current)

    def _raise_if_refused(self) -> None:
        if self._refused is not None:
            raise ReauthenticationRequiredError(self._refused.message)

    def _replace(self, current: TokenSet) -> TokenSet:
        try:
            new = self._refresh(current.refresh_token)
        except ReauthenticationRequiredError as exc:
            self._refused = exc
            raise
        self._tokens = new
        self._on_tokens(new)
        return new
