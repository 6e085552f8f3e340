"""Which fault, if any, an Ads API request meets; and the per-token rate limit."""

from __future__ import annotations

import random

from audiencesync.emulator.config import Faults, ScriptedFault


class FaultInjector:
    """Draws one fault per Ads API request: the script first, then the seeded shares."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._random = random.Random(faults.seed)  # noqa: S311 (not for security)
        self._script = list(faults.script)

    def configure(self, faults: Faults) -> None:
        """Replace the faults; a new seed or script restarts the sequence."""
        if faults.seed != self.faults.seed:
            self._random = random.Random(faults.seed)  # noqa: S311
        if faults.script != self.faults.script:
            self._script = list(faults.script)
        self.faults = faults

    def applies_to(self, kind: str) -> bool:
        return not self.faults.only_kinds or kind in self.faults.only_kinds

    def draw(self, kind: str) -> ScriptedFault | None:
        """The fault for one request of ``kind``, or None."""
        if not self.applies_to(kind):
            return None
        if self._script:
            entry = self._script.pop(0)
            return None if entry is ScriptedFault.PASS else entry
        faults = self.faults
        shares = (
            (faults.drop, ScriptedFault.DROP),
            (faults.drop_after, ScriptedFault.DROP_AFTER),
            (faults.fail_429, ScriptedFault.TOO_MANY_REQUESTS),
            (faults.fail_500, ScriptedFault.SERVER_ERROR),
            (faults.fail_503, ScriptedFault.UNAVAILABLE),
        )
        if not any(share for share, _ in shares):
            return None
        point = self._random.random()
        for share, fault in shares:
            if point < share:
                return fault
            point -= share
        return None

    @property
    def remaining_script(self) -> list[str]:
        return [str(entry) for entry in self._script]


class RateLimiter:
    """A token bucket per key: ``rate`` requests a second, bursts up to one second's worth."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str, rate: float, now: float) -> bool:
        if rate <= 0:
            return True
        capacity = max(rate, 1.0)
        tokens, last = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + max(0.0, now - last) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        return True

    def reset(self) -> None:
        self._buckets.clear()
