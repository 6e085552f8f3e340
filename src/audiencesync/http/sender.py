"""Send one logical call with the policy, the rate budget and the concurrency limit."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from audiencesync.errors import AudiencesyncError, DestinationError
from audiencesync.http.clock import Clock
from audiencesync.http.ratelimit import Budgets
from audiencesync.http.retry import Action, RetryPolicy, Rule, parse_retry_after
from audiencesync.logs import redact

logger = logging.getLogger(__name__)

_DETAIL_MAX_CHARS = 240


class TokenSource(Protocol):
    """Where a sender gets the bearer token, and how it asks for a new one after a 401."""

    def access_token(self) -> str:
        """A token valid for a while yet (refreshing first if it is about to expire)."""
        ...

    def refresh(self, rejected: str) -> None:
        """Replace ``rejected`` (answered 401); a no-op if another thread already did."""
        ...


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """What a platform's error body says, in its own words (never personal data)."""

    error_code: str | None = None
    message: str | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """One logical call: the prepared request and how to describe it.

    ``path`` is the path template (``/v1/segments/{segment_id}/users``) and ``ids`` the
    values in it: both go into the log line, which never holds the body or headers.
    ``target`` names the object for messages ("segment 123"). ``idempotent``: safe to
    send twice. ``note`` is logged too (counts, grant types; never values).
    """

    request: httpx.Request
    path: str
    ids: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    idempotent: bool = True
    note: str = ""


def _no_detail(response: httpx.Response) -> ErrorDetail:
    return ErrorDetail()


def _with_token(request: httpx.Request, token: str | None) -> httpx.Request:
    # A fresh request per attempt (sharing the body bytes, not copying them), so an
    # attempt never changes what another thread or an earlier attempt holds.
    headers = request.headers.copy()
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Request(
        request.method,
        request.url,
        headers=headers,
        content=request.content,
        extensions=request.extensions,
    )


#: A 401 refreshes the token it was sent with; a refreshed token refused again at once
#: (expired or revoked in between, as requests in flight cross a refresh) is refreshed
#: again, at most this many times in one call, before the user is asked to reconnect.
MAX_REFRESHES_PER_CALL = 3


class RetryingSender:
    """Applies a :class:`RetryPolicy` to calls on a shared, thread-safe ``httpx.Client``.

    Per attempt: take a concurrency slot, then a rate-budget slot, send, log one line.
    Backoff sleeps happen outside the slot. Failures end in the rule's error class from
    :mod:`audiencesync.errors`, never in an ``httpx`` exception.
    """

    def __init__(
        self,
        http: httpx.Client,
        policy: RetryPolicy,
        clock: Clock,
        *,
        limiter: Budgets | None = None,
        slots: threading.Semaphore | None = None,
        describe_error: Callable[[httpx.Response], ErrorDetail] = _no_detail,
        connection_name: str = "NAME",
    ) -> None:
        self._http = http
        self.policy = policy
        self._clock = clock
        self._limiter = limiter
        self._slots = slots
        self._describe_error = describe_error
        self._connection_name = connection_name
        self._counter_lock = threading.Lock()
        #: attempts sent again after a failure (``retries``) and after a 429 (``throttled``).
        self._counters = {"retries": 0, "throttled": 0}

    def counters(self) -> dict[str, int]:
        """Requests sent again so far: ``retries`` (after errors) and ``throttled`` (429)."""
        with self._counter_lock:
            return dict(self._counters)

    def _count(self, name: str) -> None:
        with self._counter_lock:
            self._counters[name] += 1

    def send(self, call: Call, tokens: TokenSource | None = None) -> httpx.Response:
        """The first 2xx response; raises an ``AudiencesyncError`` subclass otherwise."""
        failures = 0
        rate_limited = 0
        refreshed: set[str] = set()  # the tokens this call refreshed after a 401
        while True:
            token = tokens.access_token() if tokens is not None else None
            response, exc = self._attempt(call, _with_token(call.request, token), token)
            if response is not None and response.is_success:
                return response
            if response is not None:
                detail = (
                    ErrorDetail()  # the body of a 401 is not to be relied on
                    if response.status_code == 401
                    else self._safe_describe(response)
                )
                rule = self.policy.for_response(response.status_code, detail.error_code)
                retry_after = parse_retry_after(
                    response.headers.get("Retry-After"), self._clock.now()
                )
            else:
                assert exc is not None
                detail = ErrorDetail()
                rule = self.policy.for_exception(exc)
                retry_after = None

            if rule.action is Action.REFRESH_TOKEN:
                if (
                    tokens is None
                    or token is None
                    or token in refreshed
                    or len(refreshed) >= MAX_REFRESHES_PER_CALL
                ):
                    raise self._final(rule, call, response, exc, detail, failures + 1)
                tokens.refresh(token)
                refreshed.add(token)
                continue
            if rule.action is Action.RATE_LIMITED:
                rate_limited += 1
                wait = self.policy.delay(rule, rate_limited, retry_after)
                attempts = rate_limited
            elif rule.action is Action.RETRY:
                failures += 1
                attempts = failures
                if rule.needs_idempotent and not call.idempotent:
                    raise self._final(rule, call, response, exc, detail, attempts, unsafe=True)
                wait = self.policy.delay(rule, failures, retry_after)
            else:
                raise self._final(rule, call, response, exc, detail, failures + 1)
            if wait is None:
                raise self._final(rule, call, response, exc, detail, attempts)
            self._count("throttled" if rule.action is Action.RATE_LIMITED else "retries")
            logger.warning(
                "%s %s: %s, attempt %d, retrying in %.2f s",
                call.request.method,
                call.path,
                response.status_code if response is not None else type(exc).__name__,
                attempts,
                wait,
            )
            self._clock.sleep(wait)

    def _attempt(
        self, call: Call, request: httpx.Request, token: str | None
    ) -> tuple[httpx.Response | None, Exception | None]:
        slot: AbstractContextManager[object] = (
            self._slots if self._slots is not None else nullcontext()
        )
        with slot:
            if self._limiter is not None:
                self._limiter.acquire(token)
            started = self._clock.monotonic()
            try:
                response = self._http.send(request)
            except httpx.HTTPError as exc:
                self._log(call, type(exc).__name__, started)
                return None, exc
            self._log(call, str(response.status_code), started)
            return response, None

    def _log(self, call: Call, outcome: str, started: float) -> None:
        millis = (self._clock.monotonic() - started) * 1000.0
        ids = " ".join(f"{key}={value}" for key, value in call.ids.items())
        logger.info(
            "%s %s %s %.0f ms%s%s",
            call.request.method,
            call.path,
            outcome,
            millis,
            f" {ids}" if ids else "",
            f" {call.note}" if call.note else "",
        )

    def _safe_describe(self, response: httpx.Response) -> ErrorDetail:
        try:
            return self._describe_error(response)
        except Exception:  # noqa: BLE001 (a malformed error body must not hide the status)
            return ErrorDetail()

    def _final(
        self,
        rule: Rule,
        call: Call,
        response: httpx.Response | None,
        exc: Exception | None,
        detail: ErrorDetail,
        attempts: int,
        *,
        unsafe: bool = False,
    ) -> AudiencesyncError:
        text = detail.message
        if text:
            text = redact(" ".join(text.split()))[:_DETAIL_MAX_CHARS]
        context: dict[str, object] = {
            "method": call.request.method,
            "path": call.path,
            "status": response.status_code if response is not None else None,
            "error_code": detail.error_code,
            "detail": f": {text}" if text else "",
            "request_id": detail.request_id,
            "target": call.target,
            "attempts": attempts,
            "exception": type(exc).__name__ if exc is not None else None,
            "host": call.request.url.host,
            "connection": self._connection_name,
        }
        message = self.policy.message(rule, context)
        if unsafe:
            message = (
                f"{message.rstrip('.')}; it was not retried because it may already have been "
                f"applied at {self.policy.platform}: check there before trying again."
            )
        error_class = rule.error
        if issubclass(error_class, DestinationError):
            error: AudiencesyncError = error_class(
                message,
                retryable=False if unsafe else None,
                status=response.status_code if response is not None else None,
                error_code=detail.error_code,
                request_id=detail.request_id,
            )
        else:
            error = error_class(message, retryable=False if unsafe else None)
        if exc is not None:
            error.__cause__ = exc
        return error
