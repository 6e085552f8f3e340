"""The retry policy as data.

A :class:`RetryPolicy` is an ordered table of :class:`Rule` rows. Each row matches an HTTP
status (or a range), a platform error code, or an exception class, and names what to
do: :attr:`Action.RETRY` (exponential backoff with full jitter, bounded by
``max_attempts``), :attr:`Action.RATE_LIMITED` (the same, on its own budget, honouring
``Retry-After``), :attr:`Action.REFRESH_TOKEN` (refresh once, then replay) or
:attr:`Action.FAIL`. The first matching row wins, so specific rows go first. Each row also
names the :mod:`audiencesync.errors` class raised when the call finally fails, and the
one-sentence message the user reads (a template; see :meth:`RetryPolicy.message`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

import httpx

from audiencesync.errors import (
    AudiencesyncError,
    DestinationError,
    DestinationNotFoundError,
    DestinationPermissionError,
    RateLimitedError,
    ReauthenticationRequiredError,
    TransientDestinationError,
)


class Action(StrEnum):
    RETRY = "retry"
    RATE_LIMITED = "rate_limited"
    REFRESH_TOKEN = "refresh_token"  # noqa: S105 (an action name)
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table: what it matches, what to do, what to raise in the end.

    A row matches a response when ``status`` (an int or a range) and ``error_code``
    (compared without case) both match or are ``None``, and ``exception`` is ``None``; it
    matches a transport failure when the exception is an instance of ``exception``.
    ``needs_idempotent``: a RETRY row that applies only to calls safe to send twice (the
    request may have been applied before the failure); rows for failures where the
    request certainly was not applied (connect errors, 429) set it to ``False``.
    """

    action: Action
    error: type[AudiencesyncError]
    message: str
    status: int | range | None = None
    error_code: str | None = None
    exception: type[BaseException] | None = None
    needs_idempotent: bool = True

    def matches_response(self, status: int, error_code: str | None) -> bool:
        if self.exception is not None:
            return False
        if self.status is not None:
            if isinstance(self.status, int) and status != self.status:
                return False
            if isinstance(self.status, range) and status not in self.status:
                return False
        if self.error_code is not None:
            return error_code is not None and error_code.casefold() == self.error_code.casefold()
        return True

    def matches_exception(self, exc: BaseException) -> bool:
        return self.exception is not None and isinstance(exc, self.exception)


_RETRY_LATER = "the run can be retried later"

#: Rows every HTTP destination shares; a platform prepends its own (error codes, wording).
DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(
        Action.REFRESH_TOKEN,
        ReauthenticationRequiredError,
        "{platform} refused the access token of this connection even after a refresh: "
        "an administrator must re-authenticate connection {connection} (sign in to "
        "{platform} again).",
        status=401,
    ),
    Rule(
        Action.RATE_LIMITED,
        RateLimitedError,
        "{platform} kept answering 429 (rate limited) to {method} {path} after {attempts} "
        "attempts: {retry_later}, or lower AUDIENCESYNC_HTTP_REQUESTS_PER_SECOND and "
        "AUDIENCESYNC_HTTP_MAX_CONCURRENCY.",
        status=429,
        needs_idempotent=False,
    ),
    Rule(
        Action.FAIL,
        DestinationPermissionError,
        "{platform} refused {method} {path} on {target} (403 forbidden{detail}): make sure "
        "the {platform} user of this connection has access to it.",
        status=403,
    ),
    Rule(
        Action.FAIL,
        DestinationNotFoundError,
        "{platform} does not know {target} (404 on {method} {path}{detail}): check the id "
        "in the export's settings, or let audiencesync create the audience again.",
        status=404,
    ),
    Rule(
        Action.FAIL,
        DestinationError,
        "{platform} no longer offers {target} (410 gone on {method} {path}{detail}): "
        "create the audience again.",
        status=410,
    ),
    Rule(
        Action.FAIL,
        DestinationError,
        "{platform} rejected {method} {path} with status {status}{detail}: this is a bug in "
        "audiencesync or an invalid value in the export's settings; report it with request "
        "id {request_id}.",
        status=range(400, 500),
    ),
    Rule(
        Action.RETRY,
        TransientDestinationError,
        "{platform} failed {method} {path} with status {status}{detail} {attempts} times "
        "(it may be down for maintenance): {retry_later}; AUDIENCESYNC_HTTP_MAX_ATTEMPTS "
        "sets how often audiencesync tries.",
        status=range(500, 600),
    ),
    Rule(
        Action.RETRY,
        TransientDestinationError,
        "could not connect to {platform} at {host} ({exception}) after {attempts} attempts: "
        "check the network and the {platform} URL settings, or retry later.",
        exception=httpx.ConnectError,
        needs_idempotent=False,
    ),
    Rule(
        Action.RETRY,
        TransientDestinationError,
        "could not connect to {platform} at {host} in time ({exception}) after {attempts} "
        "attempts: check the network, or retry later.",
        exception=httpx.ConnectTimeout,
        needs_idempotent=False,
    ),
    Rule(
        Action.RETRY,
        TransientDestinationError,
        "no free connection to {platform} at {host} in time ({exception}) after {attempts} "
        "attempts: lower AUDIENCESYNC_HTTP_MAX_CONCURRENCY, or retry later.",
        exception=httpx.PoolTimeout,
        needs_idempotent=False,
    ),
    Rule(
        Action.RETRY,
        TransientDestinationError,
        "{platform} did not answer {method} {path} within AUDIENCESYNC_HTTP_TIMEOUT_SECONDS "
        "({exception}) after {attempts} attempts: {retry_later}, or raise the timeout.",
        exception=httpx.TimeoutException,
    ),
    Rule(
        Action.RETRY,
        TransientDestinationError,
        "the connection to {platform} at {host} failed during {method} {path} ({exception}) "
        "after {attempts} attempts: {retry_later}.",
        exception=httpx.TransportError,
    ),
    Rule(
        Action.FAIL,
        DestinationError,
        "{platform} answered {method} {path} with unexpected status {status}{detail}: report "
        "it with request id {request_id}.",
    ),
    Rule(
        Action.FAIL,
        DestinationError,
        "calling {platform} ({method} {path}) failed: {exception}.",
        exception=Exception,
    ),
)


def _full_jitter(low: float, high: float) -> float:
    # Jitter spreads retries out; it is not a security decision.
    return random.uniform(low, high)  # noqa: S311


class _Template(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return "?"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The table plus its knobs (each one a setting; see ``Settings.http_*``)."""

    platform: str = "the destination"
    rules: tuple[Rule, ...] = DEFAULT_RULES
    max_attempts: int = 8
    max_rate_limited_attempts: int = 20
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    retry_after_max_seconds: float = 300.0
    #: ``uniform(low, high)``; injected in tests to make jitter predictable.
    jitter: Callable[[float, float], float] = field(default=_full_jitter, compare=False)

    def with_rules(self, first: Iterable[Rule]) -> RetryPolicy:
        """This policy with ``first`` ahead of its rows (a platform's specific rows)."""
        return replace(self, rules=(*first, *self.rules))

    def for_response(self, status: int, error_code: str | None) -> Rule:
        """The first row matching an HTTP error answer."""
        for rule in self.rules:
            if rule.matches_response(status, error_code):
                return rule
        return _LAST_RESORT

    def for_exception(self, exc: BaseException) -> Rule:
        """The first row matching a transport failure."""
        for rule in self.rules:
            if rule.matches_exception(exc):
                return rule
        return _LAST_RESORT

    def backoff(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure: full jitter, capped."""
        ceiling = min(
            self.backoff_max_seconds, self.backoff_base_seconds * (2 ** max(0, failures - 1))
        )
        return max(0.0, self.jitter(0.0, ceiling))

    def delay(self, rule: Rule, failures: int, retry_after: float | None) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to give up now.

        ``Retry-After`` is honoured exactly when present, unless it asks for longer than
        ``retry_after_max_seconds`` (then the call fails, marked retryable).
        """
        budget = (
            self.max_rate_limited_attempts
            if rule.action is Action.RATE_LIMITED
            else (self.max_attempts)
        )
        if failures >= budget:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.retry_after_max_seconds else None
        return self.backoff(failures)

    def message(self, rule: Rule, context: Mapping[str, object]) -> str:
        """The rule's sentence with ``context`` filled in (missing keys become ``?``)."""
        values = _Template(
            platform=self.platform,
            connection="NAME",
            target="the requested object",
            detail="",
            request_id="(none)",
            retry_later=_RETRY_LATER,
        )
        values.update({key: value for key, value in context.items() if value is not None})
        text = rule.message.format_map(values)
        return text[0].upper() + text[1:] if text else text


_LAST_RESORT = DEFAULT_RULES[-2]


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
