"""Rate budgets shared by every process through a PostgreSQL control database.

Snapchat counts requests per access token; each process's own window
(``http.ratelimit``) keeps one process under the limit, not several workers on several
machines. :class:`DatabaseBudgets` keeps each token's latest slots in ``rate_windows``
(keyed by a keyed hash of the token, never the token) and hands out slots under a row
lock, on the database's clock, so machines whose clocks differ still agree. A process
sleeps until its slot outside the transaction. The rule is the per-process one: at most
``floor(rate)`` requests in any ``floor(rate) / rate * 1.1`` seconds, and it holds for
the times requests are sent: a process that wakes more than ``late_tolerance`` after its
slot (a busy machine) gives the slot up and takes a new one in one transaction, so a late
request never goes out beside the next slots' requests, which other processes hold.

With SQLite (one machine) the process-wide windows are kept. If the database cannot be
reached for a slot, the process falls back to its own window for that request (logged):
the retry policy then meets Snapchat's 429s, which it waits out.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from audiencesync.control.db import Database
from audiencesync.http import Budgets, Clock, SystemClock, shared_budgets
from audiencesync.http.ratelimit import (
    late_tolerance,
    next_slot,
    recent_slots,
    window_of,
    without_slot,
)

log = logging.getLogger(__name__)

#: Rows untouched for this long are deleted now and then (tokens rotate every ~30 min).
FORGET_AFTER_SECONDS = 3600.0


class DatabaseBudgets:
    """Per-token rate budgets in the control database (PostgreSQL)."""

    def __init__(
        self,
        db: Database,
        rate: float,
        digest: Callable[[str], str],
        clock: Clock | None = None,
    ) -> None:
        self._db = db
        self._rate = rate
        self._limit, self._window = window_of(rate)
        self._tolerance = late_tolerance(rate)
        self._digest = digest
        self._clock = clock or SystemClock()
        self._fallback = shared_budgets(rate, self._clock)
        self._last_sweep = 0.0

    @property
    def rate(self) -> float:
        return self._rate

    def reserve(self, token: str | None) -> float:
        """Take the next slot of ``token``'s shared window; the seconds until it comes."""
        return self._reserve(token)[1]

    def _reserve(self, token: str | None, give_up: float | None = None) -> tuple[float, float]:
        """The next slot (database seconds) and the seconds until it comes."""
        slot, wait, _ = self._take(token, give_up)
        return slot, wait

    def _take(self, token: str | None, give_up: float | None) -> tuple[float, float, float]:
        """The next slot (database seconds), the seconds until it comes, and when that is
        on this process's clock; ``give_up`` (a slot this process took and did not use)
        is freed in the same transaction."""
        key = self._digest(token or "")
        with self._db.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO rate_windows (key, slots, updated) VALUES (:key, '[]', 0) "
                    "ON CONFLICT (key) DO NOTHING"
                ),
                {"key": key},
            )
            stored = connection.execute(
                text("SELECT slots FROM rate_windows WHERE key = :key FOR UPDATE"),
                {"key": key},
            ).scalar_one()
            # The time is read once the lock is held (read in the locking SELECT, it can
            # date from before a wait for the lock). The commit does not wait for the
            # disk: a slot lost in a crash of the database costs at worst one burst too
            # many, met by the retry policy, while a slow commit would make every
            # request late for its slot.
            now = float(
                connection.execute(
                    text(
                        "SELECT extract(epoch FROM clock_timestamp()), "
                        "set_config('synchronous_commit', 'off', true)"
                    )
                ).one()[0]
            )
            # Local time just after the database's: the slot on this clock is never
            # early, and the time the commit takes counts as lateness.
            known = self._clock.monotonic()
            slots = [float(s) for s in json.loads(stored)]
            if give_up is not None:
                slots = without_slot(slots, give_up)
            slots = recent_slots(slots, now, self._window)
            slot = next_slot(slots, now, self._limit, self._window)
            connection.execute(
                text("UPDATE rate_windows SET slots = :slots, updated = :now WHERE key = :key"),
                {"slots": json.dumps([*slots, slot]), "now": now, "key": key},
            )
            if now - self._last_sweep > FORGET_AFTER_SECONDS:
                self._last_sweep = now
                connection.execute(
                    text("DELETE FROM rate_windows WHERE updated < :horizon AND key <> :key"),
                    {"horizon": now - FORGET_AFTER_SECONDS, "key": key},
                )
        return slot, slot - now, known + (slot - now)

    def acquire(self, token: str | None) -> float:
        """Take one slot, sleeping until it is due; returns the seconds waited.

        The slot is on the database's clock; the sleep and the check that the request is
        not late for it are on this process's clock, from the moment the database's time
        was read (so never early). More than the tolerance late (a slow commit, a late
        wake-up), the process gives the slot up and takes the next one: it sends within
        the tolerance of a slot, or not at all.
        """
        waited = 0.0
        try:
            slot, _, due = self._take(token, None)
            while True:
                wait = due - self._clock.monotonic()
                if wait > 0:
                    self._clock.sleep(wait)
                    waited += wait
                if self._clock.monotonic() - due <= self._tolerance:
                    return waited
                slot, _, due = self._take(token, slot)
        except SQLAlchemyError as error:
            log.warning(
                "the shared rate budget could not be read (%s): this process keeps its own",
                type(error).__name__,
            )
            return waited + self._fallback.acquire(token)


def budgets_for(db: Database, rate: float, digest: Callable[[str], str]) -> Budgets | None:
    """Shared budgets when the control database is PostgreSQL; None (each process's own
    windows) otherwise."""
    if db.engine.dialect.name != "postgresql":
        return None
    return DatabaseBudgets(db, rate, digest)
