"""The one error tree of audiencesync.

Every error a user can cause or meet carries ``message``: one plain sentence that says
what happened and what to do, in words of no particular interface (never a command-line
flag or command, never a button). What the sentence concerns travels beside it as data:

- ``field``: the input at fault, by its name in the service's spec (``email_field``,
  ``segments``, ``audience_id``, ``name``...). The CLI renders it as its flag, the API as
  the body field, the UI shows the message next to that form field.
- ``fix``: the action that helps (:class:`Fix`: ``reauthenticate`` connection X,
  ``cancel_run`` 12, ``list`` segments...). The CLI renders it as a command, the API and
  UI as the page or button that does it (``audiencesync.wording``).

``retryable`` tells the caller (the sync loader, the HTTP client, the scheduler) whether
trying again can help. Interfaces (CLI, API, UI) never show a traceback for these errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Fix:
    """An action that fixes an error, as data (each interface words it its own way).

    ``kind`` is one of :data:`audiencesync.wording.FIX_KINDS`; ``target`` the named thing
    it acts on (a connection or export name, a run id, what to list).
    """

    kind: str
    target: str | None = None


class AudiencesyncError(Exception):
    """Base of every error audiencesync raises on purpose."""

    retryable: bool = False
    #: exit code the CLI uses; HTTP status the API maps to.
    exit_code: int = 1
    http_status: int = 400

    def __init__(
        self,
        message: str,
        *,
        retryable: bool | None = None,
        field: str | None = None,
        fix: Fix | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.fix = fix
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        return self.message


@contextmanager
def about(field: str) -> Iterator[None]:
    """Errors raised inside the block that name no field of their own concern ``field``.

    For checks shared by several inputs (a URL's parsing, an identifier type's name) the
    caller knows which input it handed over; the check itself does not.
    """
    try:
        yield
    except AudiencesyncError as error:
        if error.field is None:
            error.field = field
        raise


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


class ActiveRunError(ConflictError):
    """The export already has a queued or running run; ``run_id`` is that run."""

    def __init__(self, message: str, *, run_id: int) -> None:
        super().__init__(message, fix=Fix("cancel_run", str(run_id)))
        self.run_id = run_id


class PermissionDeniedError(AudiencesyncError):
    """The acting user's role does not allow the action."""

    exit_code = 5
    http_status = 403


class NotSetUpError(AudiencesyncError):
    """The home folder or control database is missing or not initialised."""

    exit_code = 6
    http_status = 503


class DatabaseUnavailableError(AudiencesyncError):
    """The control database cannot be reached or written (down, moved, disk full).

    Retrying once it answers again can help; the message never holds the URL's secrets.
    It holds the driver's reason (host, port, database name), which is for the operator
    (the command line, the server's log): the web and the API say ``public_message``.
    """

    retryable = True
    exit_code = 10
    http_status = 503
    public_message = (
        "the control database is unreachable: check AUDIENCESYNC_DATABASE_URL and that the "
        "database server is running and its disk has space."
    )


class DiskFullError(AudiencesyncError):
    """A write to the home folder (an import's files) found its disk full.

    Nothing was changed; retrying once there is space helps. Same exit code and status as
    an unreachable control database: the storage, not the input, is what failed.
    """

    retryable = True
    exit_code = 10
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
        field: str | None = None,
        fix: Fix | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable, field=field, fix=fix)
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
