"""The one error tree of audiencesync.

Every error a user can cause or meet carries ``message``: one plain sentence that says
what happened and what to do. ``retryable`` tells the caller (the sync loader, the HTTP
client, the scheduler) whether trying again can help. Interfaces (CLI, API, UI) show
``message`` and never a traceback for these errors.
"""

from __future__ import annotations


class AudiencesyncError(Exception):
    """Base of every error audiencesync raises on purpose."""

    retryable: bool = False
    #: exit code the CLI uses; HTTP status the API maps to.
    exit_code: int = 1
    http_status: int = 400

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        return self.message


class UserInputError(AudiencesyncError):
    """Bad input: a file, a flag, a rule, a field name. Fix the input and retry."""

    exit_code = 2
    http_status = 400


class NotFoundError(AudiencesyncError):
    """A named thing (user, dataset, segment, connection, export, run) does not exist."""

    exit_code = 3
    http_status = 404


class ConflictError(AudiencesyncError):
    """The change conflicts with the current state (name taken, still in use, busy)."""

    exit_code = 4
    http_status = 409


class PermissionDeniedError(AudiencesyncError):
    """The acting user's role does not allow the action."""

    exit_code = 5
    http_status = 403


class NotSetUpError(AudiencesyncError):
    """The home folder or control database is missing or not initialised."""

    exit_code = 6
    http_status = 503


class NotImplementedYetError(AudiencesyncError):
    """A capability that is planned but not built yet (the issue stays open)."""

    exit_code = 7
    http_status = 501


class DestinationError(AudiencesyncError):
    """The destination (Snapchat) refused or failed a request.

    ``status``, ``error_code`` and ``request_id`` record what the platform answered (when
    it answered), for support tickets and run records; they never hold personal data.
    """

    exit_code = 8
    http_status = 502

    def __init__(
        self,
        message: str,
        *,
        retryable: bool | None = None,
        status: int | None = None,
        error_code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable)
        self.status = status
        self.error_code = error_code
        self.request_id = request_id


class DestinationPermissionError(DestinationError):
    """The destination says the connected user lacks access (Snap E3002). Not retried."""


class DestinationNotFoundError(DestinationError):
    """The destination does not know the audience or account asked for."""


class ReauthenticationRequiredError(DestinationError):
    """The connection's refresh token was refused (invalid_grant): reconnect it."""


class RateLimitedError(DestinationError):
    """The destination answered 429 too often; retrying later can help."""

    retryable = True


class TransientDestinationError(DestinationError):
    """A 5xx, a timeout or a dropped connection; retrying later can help."""

    retryable = True
