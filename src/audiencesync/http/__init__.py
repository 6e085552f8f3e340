"""Generic HTTP plumbing every destination shares.

- :mod:`.clock`: the injected :class:`Clock` (real, or manual in tests).
- :mod:`.retry`: the retry policy as data: a table from status, platform error code or
  exception class to an :class:`Action`.
- :mod:`.ratelimit`: requests per second per access token, in any window (client side).
- :mod:`.sender`: :class:`RetryingSender`, which applies the policy, the rate limit, the
  concurrency limit and a token refresh on 401 to each call, and logs one line per call.
"""

from __future__ import annotations

from audiencesync.http.clock import Clock, SystemClock
from audiencesync.http.ratelimit import Budgets, RateBudgets, RequestWindow, shared_budgets
from audiencesync.http.retry import (
    DEFAULT_RULES,
    Action,
    RetryPolicy,
    Rule,
    parse_retry_after,
)
from audiencesync.http.sender import Call, ErrorDetail, RetryingSender, TokenSource

__all__ = [
    "DEFAULT_RULES",
    "Action",
    "Budgets",
    "Call",
    "Clock",
    "ErrorDetail",
    "RateBudgets",
    "RequestWindow",
    "RetryPolicy",
    "RetryingSender",
    "Rule",
    "SystemClock",
    "TokenSource",
    "parse_retry_after",
    "shared_budgets",
]
