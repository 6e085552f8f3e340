"""Client-side rate budgets: at most N requests in any window, per access token.

Snap allows about 10 requests per second per access token. :class:`RequestWindow` keeps
that rule with a margin (never more than 10 requests in any 1.1 seconds) while
letting a short run of requests go at once: a diff run that sends six batches does not
wait 0.6 s for a budget it has. :class:`RateBudgets` holds one window per access token,
since the limit follows the token, not the client object: runs one after another in a
process reuse the same token and must share its budget.

Callers reserve a slot under a lock and then sleep outside it until their slot comes,
so concurrent threads queue in order instead of waking together and colliding. A caller
that wakes more than :func:`late_tolerance` after its slot (a busy machine schedules
sleepers late) gives the slot up and takes a new one: the rule holds for the times
requests are sent, not only for the slots handed out, so no request goes out beside the
next slot's requests.
"""

from __future__ import annotations

import hashlib
import math
import threading
from typing import Protocol

from audiencesync.http.clock import Clock

#: Each window is this much longer than ``limit / rate``: a request reaches Snapchat a
#: little after its slot (a late wake-up, a new connection), and a window filled to the
#: limit at both edges would then put one request too many into Snap's second.
WINDOW_MARGIN = 0.1


class Budgets(Protocol):
    """Rate budgets per access token: what a sender needs of them."""

    @property
    def rate(self) -> float: ...

    def acquire(self, token: str | None) -> float:
        """Take one slot of ``token``'s budget, sleeping until it is due; the seconds waited."""
        ...


def next_slot(slots: list[float], now: float, limit: int, window: float) -> float:
    """The time of the next request allowed after ``slots`` (the last requests' times, in
    order): at most ``limit`` in any ``window`` seconds, never before the latest slot."""
    slot = now
    if len(slots) >= limit:
        # The request `limit` places back must be a whole window old.
        slot = max(slot, slots[-limit] + window)
    if slots:
        slot = max(slot, slots[-1])
    return slot


def late_tolerance(rate: float) -> float:
    """How late after its slot a request may still go: half the window's margin (50 ms at
    10 req/s). The other half is left for what follows the wake-up (handing the request
    to the connection, the network, the server's clock)."""
    limit, window = window_of(rate)
    return (window - limit / rate) / 2


def without_slot(slots: list[float], slot: float) -> list[float]:
    """``slots`` less one occurrence of ``slot`` (a slot given up, its request unsent)."""
    kept = list(slots)
    if slot in kept:
        kept.remove(slot)
    return kept


def recent_slots(slots: list[float], now: float, window: float) -> list[float]:
    """The slots that still bound the next ones at ``now``: those less than a window old
    (and every later one), in order. Kept by age, not by count, so a slot given up
    never lets an older one that still counts drop out."""
    return sorted(s for s in slots if s + window > now)


def window_of(rate: float) -> tuple[int, float]:
    """``(limit, window)`` for ``rate`` requests per second (see :class:`RequestWindow`)."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    limit = max(1, math.floor(rate))
    return limit, limit / rate * (1 + WINDOW_MARGIN)


class RequestWindow:
    """At most ``rate`` requests per second: ``limit`` in any ``window`` seconds.

    ``limit`` is the whole part of ``rate`` (at least 1) and ``window`` is
    ``limit / rate`` plus :data:`WINDOW_MARGIN` of it: 10 req/s allows 10 requests in
    any 1.1 seconds, 0.5 req/s one in any 2.2 seconds.
    """

    def __init__(self, rate: float, clock: Clock) -> None:
        self._rate = rate
        self._limit, self._window = window_of(rate)
        self._tolerance = late_tolerance(rate)
        self._clock = clock
        self._lock = threading.Lock()
        self._slots: list[float] = []
        self._last: float | None = None

    @property
    def rate(self) -> float:
        return self._rate

    def reserve(self) -> float:
        """Take the next free slot; returns the seconds until it comes (0 = now)."""
        return self._take()[1]

    def _take(self, give_up: float | None = None) -> tuple[float, float]:
        with self._lock:
            now = self._clock.monotonic()
            slots = self._slots if give_up is None else without_slot(self._slots, give_up)
            slots = recent_slots(slots, now, self._window)
            slot = next_slot(slots, now, self._limit, self._window)
            self._slots = [*slots, slot]
            self._last = slot
        return slot, slot - now

    def acquire(self) -> float:
        """Take one slot, sleeping until it is due; returns the seconds waited. Woken too
        late for it, gives it up and takes the next one."""
        waited = 0.0
        slot, wait = self._take()
        while True:
            if wait > 0:
                self._clock.sleep(wait)
                waited += wait
            if self._clock.monotonic() - slot <= self._tolerance:
                return waited
            slot, wait = self._take(give_up=slot)

    def idle_since(self) -> float | None:
        """The time of the last reserved slot (None when none was taken)."""
        with self._lock:
            return self._last


class RateBudgets:
    """One :class:`RequestWindow` per access token (requests without one share a window).

    Tokens are kept only as SHA-256 digests. Windows idle for two windows' time are
    dropped, so the table stays as small as the tokens in use.
    """

    def __init__(self, rate: float, clock: Clock) -> None:
        self._rate = rate
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[bytes, RequestWindow] = {}

    @property
    def rate(self) -> float:
        return self._rate

    def acquire(self, token: str | None) -> float:
        """Take one slot of ``token``'s budget, sleeping until it is due."""
        key = hashlib.sha256(token.encode()).digest() if token else b""
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                self._forget_idle()
                window = self._windows[key] = RequestWindow(self._rate, self._clock)
        return window.acquire()

    def _forget_idle(self) -> None:
        now = self._clock.monotonic()
        horizon = max(1.0, 1.0 / self._rate) * (1 + WINDOW_MARGIN) * 2
        for key, window in list(self._windows.items()):
            last = window.idle_since()
            if last is None or now - last > horizon:
                del self._windows[key]


_shared: dict[float, RateBudgets] = {}
_shared_lock = threading.Lock()


def shared_budgets(rate: float, clock: Clock) -> RateBudgets:
    """The process-wide budgets at ``rate`` (one table per rate, on the real clock)."""
    with _shared_lock:
        found = _shared.get(rate)
        if found is None:
            found = _shared[rate] = RateBudgets(rate, clock)
        return found
