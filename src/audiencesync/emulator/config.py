"""What an emulator is started with, and the faults it injects.

This module is light on purpose (no web framework): the CLI reads its defaults to
build its help text without importing the server.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
DEFAULT_CLIENT_ID = "audiencesync-dev"
DEFAULT_CLIENT_SECRET = "dev-secret-not-for-production"  # noqa: S105 (a public dev credential)
# The redirect URI audiencesync's settings use by default.
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8765/oauth/callback"
DEFAULT_TOKEN_TTL_SECONDS = 1800.0
DEFAULT_MATCH_RATE = 0.7
DEFAULT_PROCESSING_SECONDS = 3.0
DEFAULT_RATE_LIMIT = 10.0
DEFAULT_PAGE_SIZE = 50

#: Snap's documented caps.
MAX_IDS_PER_REQUEST = 100_000
MAX_SEGMENTS_PER_AD_ACCOUNT = 1000
MAX_PAGE_SIZE = 1000
MAX_SEGMENT_NAME_LENGTH = 375
TARGETABLE_MIN_USERS = 1000


class Schema(StrEnum):
    """The identifier schemas a customer list accepts."""

    EMAIL_SHA256 = "EMAIL_SHA256"
    PHONE_SHA256 = "PHONE_SHA256"
    MOBILE_AD_ID_SHA256 = "MOBILE_AD_ID_SHA256"


class ScriptedFault(StrEnum):
    """One answer forced on the next Ads API request (see :attr:`Faults.script`)."""

    PASS = "pass"  # noqa: S105 (no fault for this request)
    UNAUTHORIZED = "401"
    TOO_MANY_REQUESTS = "429"
    SERVER_ERROR = "500"
    UNAVAILABLE = "503"
    DROP = "drop"  # close the connection before doing anything
    DROP_AFTER = "drop_after"  # apply the request, then close without answering


@dataclass(frozen=True, slots=True)
class Faults:
    """Faults injected into Ads API calls (never into OAuth or ``/_emulator/`` calls).

    Shares are probabilities drawn from one seeded generator per request, so a run with
    the same seed and the same order of requests sees the same faults. ``script`` is
    consumed first, one entry per request, for tests that need an exact sequence.
    """

    fail_429: float = 0.0
    fail_500: float = 0.0
    fail_503: float = 0.0
    drop: float = 0.0
    drop_after: float = 0.0
    #: seconds sent in a Retry-After header with injected 429s; None sends none.
    retry_after: int | None = None
    latency_ms: int = 0
    seed: int = 0
    #: request kinds the faults apply to (e.g. ``add_users``); empty means every kind.
    only_kinds: frozenset[str] = frozenset()
    script: tuple[ScriptedFault, ...] = ()

    def __post_init__(self) -> None:
        shares = (self.fail_429, self.fail_500, self.fail_503, self.drop, self.drop_after)
        if any(not 0.0 <= share <= 1.0 for share in shares):
            raise ValueError("fault shares must be between 0 and 1.")
        if sum(shares) > 1.0 + 1e-9:
            raise ValueError("fault shares add up to more than 1.")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError("retry_after must be 0 or more seconds.")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be 0 or more.")

    def to_json(self) -> dict[str, Any]:
        """The faults as JSON-ready values."""
        return {
            "fail_429": self.fail_429,
            "fail_500": self.fail_500,
            "fail_503": self.fail_503,
            "drop": self.drop,
            "drop_after": self.drop_after,
            "retry_after": self.retry_after,
            "latency_ms": self.latency_ms,
            "seed": self.seed,
            "only_kinds": sorted(self.only_kinds),
            "script": [str(entry) for entry in self.script],
        }

    def updated(self, changes: Mapping[str, Any]) -> Faults:
        """A copy with ``changes`` (JSON values) applied; raises ValueError on a bad value."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}.")
        values: dict[str, Any] = {}
        try:
            for name, value in changes.items():
                if name in {"fail_429", "fail_500", "fail_503", "drop", "drop_after"}:
                    values[name] = _number(value, name)
                elif name in {"latency_ms", "seed"}:
                    values[name] = _integer(value, name)
                elif name == "retry_after":
                    values[name] = None if value is None else _integer(value, name)
                elif name == "only_kinds":
                    values[name] = frozenset(_strings(value, name))
                else:  # script
                    values[name] = tuple(ScriptedFault(entry) for entry in _strings(value, name))
        except ValueError as error:
            raise ValueError(str(error)) from None
        return dataclasses.replace(self, **values)


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number.")
    return float(value)


def _integer(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer.")
    return value


def _strings(value: object, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{name} must be a list of strings.")
    return list(value)


#: Settings that ``/_emulator/settings`` may change while the emulator runs.
RUNTIME_SETTINGS = (
    "auto_approve",
    "token_ttl",
    "match_rate",
    "processing_seconds",
    "rate_limit",
    "page_size",
)


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """How one emulator behaves. Every field has the default the CLI uses."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    #: skip the approval page and redirect at once.
    auto_approve: bool = False
    token_ttl: float = DEFAULT_TOKEN_TTL_SECONDS
    match_rate: float = DEFAULT_MATCH_RATE
    #: how long an upload stays PROCESSING.
    processing_seconds: float = DEFAULT_PROCESSING_SECONDS
    #: SQLite snapshot file; None keeps state in memory only.
    state_path: Path | None = None
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    redirect_uris: tuple[str, ...] = (DEFAULT_REDIRECT_URI,)
    #: accept any http://127.0.0.1|[::1]|localhost:ANY_PORT/ANY_PATH redirect (RFC 8252
    #: section 7.3), so `serve` on any port and the CLI's listener work with no flag.
    allow_loopback_redirects: bool = True
    #: requests per second per access token; 0 turns the limit off.
    rate_limit: float = DEFAULT_RATE_LIMIT
    #: page size of segment lists when the request gives no ``limit``.
    page_size: int = DEFAULT_PAGE_SIZE
    faults: Faults = Faults()
    #: wall clock in seconds (injectable so expiry and matching tests need no sleep).
    clock: Callable[[], float] = field(default=time.time, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.match_rate <= 1.0:
            raise ValueError("match rate must be between 0 and 1.")
        if self.token_ttl <= 0:
            raise ValueError("token TTL must be more than 0 seconds.")
        if self.processing_seconds < 0:
            raise ValueError("processing seconds must be 0 or more.")
        if self.rate_limit < 0:
            raise ValueError("rate limit must be 0 (off) or more requests per second.")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page size must be between 1 and {MAX_PAGE_SIZE}.")
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be between 0 and 65535.")
        if not self.client_id or not self.client_secret:
            raise ValueError("client id and client secret must not be empty.")
        if not self.redirect_uris and not self.allow_loopback_redirects:
            raise ValueError("register at least one redirect URI or allow loopback redirects.")

    @classmethod
    def from_options(cls, **options: Any) -> EmulatorConfig:
        """A config from flat keyword options: fault fields (``fail_429``, ...) go to
        :class:`Faults`, ``redirect_uris`` may be any sequence. Raises TypeError for an
        unknown option and ValueError for a bad value."""
        fault_names = {f.name for f in dataclasses.fields(Faults)}
        fault_options = {k: options.pop(k) for k in list(options) if k in fault_names}
        if fault_options:
            base = options.pop("faults", Faults())
            options["faults"] = dataclasses.replace(base, **fault_options)
        if "redirect_uris" in options:
            options["redirect_uris"] = tuple(options["redirect_uris"])
        if options.get("state_path") is not None:
            options["state_path"] = Path(options["state_path"])
        return cls(**options)

    def runtime_json(self) -> dict[str, Any]:
        """The settings ``/_emulator/settings`` shows and may change."""
        return {name: getattr(self, name) for name in RUNTIME_SETTINGS}

    def updated(self, changes: Mapping[str, Any]) -> EmulatorConfig:
        """A copy with runtime settings changed; raises ValueError on an unknown or bad one."""
        unknown = sorted(set(changes) - set(RUNTIME_SETTINGS))
        if unknown:
            raise ValueError(f"unknown or fixed setting(s): {', '.join(unknown)}.")
        values: dict[str, Any] = {}
        for name, value in changes.items():
            if name == "auto_approve":
                if not isinstance(value, bool):
                    raise ValueError("auto_approve must be true or false.")
                values[name] = value
            elif name == "page_size":
                values[name] = _integer(value, name)
            else:
                values[name] = _number(value, name)
        return dataclasses.replace(self, **values)
