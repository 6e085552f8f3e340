"""A client-side rate budget: a thread-safe token bucket."""

from __future__ import annotations

import threading

from audiencesync.http.clock import Clock


class TokenBucket:
    """At most ``rate`` acquisitions per second on average, bursts up to ``capacity``.

    Callers reserve a slot under a lock and then sleep outside it until their slot comes,
    so concurrent threads queue in order instead of waking together and colliding.
    """

    def __init__(self, rate: float, clock: Clock, *, capacity: float = 1.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._rate = rate
        self._capacity = max(1.0, capacity)
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = self._capacity
        self._updated = clock.monotonic()

    @property
    def rate(self) -> float:
        return self._rate

    def acquire(self) -> float:
        """Take one slot, sleeping until it is due; returns the seconds waited."""
        with self._lock:
            now = self._clock.monotonic()
            elapsed = max(0.0, now - self._updated)
            self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)
            self._updated = now
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self._rate
        if wait > 0:
            self._clock.sleep(wait)
        return wait
