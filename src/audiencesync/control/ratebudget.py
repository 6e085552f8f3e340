"""Rate budgets shared by every process through a PostgreSQL control database.

Snapchat counts requests per access token; each process's own window
(``http.ratelimit``) keeps one process under the limit, not several workers on several
machines. :class:`DatabaseBudgets` keeps each token's latest slots in ``rate_windows``
(keyed by a keyed hash of the token, never the token) and hands out slots under a row
lock, on the database's clock, so machines whose clocks differ still agree. A process
sleeps until its slot outside the transaction. The rule is the per-process one: at most
``floor(rate)`` requests in any ``floor(rate) / rate * 1.1`` seconds.

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
from audiencesync.http.ratelimit import next_slot, window_of

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

    def _reserve(self, token: str | None) -> tuple[float, float]:
        key = self._digest(token or "")
        with self._db.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO rate_windows (key, slots, updated) VALUES (:key, '[]', 0) "
                    "ON CONFLICT (key) DO NOTHING"
                ),
                {"key": key},
            )
            row = connection.execute(
                text(
                    "SELECT slots, extract(epoch FROM clock_timestamp()) FROM rate_windows "
                    "WHERE key = :key FOR UPDATE"
                ),
                {"key": key},
            ).one()
            slots = [float(s) for s in json.loads(row[0])]
            now = float(row[1])
            slot = next_slot(slots, now, self._limit, self._window)
            kept = [*slots, slot][-self._limit :]
            connection.execute(
                text("UPDATE rate_windows SET slots = :slots, updated = :now WHERE key = :key"),
                {"slots": json.dumps(kept), "now": now, "key": key},
            )
            if now - self._last_sweep > FORGET_AFTER_SECONDS:
                self._last_sweep = now
                connection.execute(
                    text("DELETE FROM rate_windows WHERE updated < :horizon AND key <> :key"),
                    {"horizon": now - FORGET_AFTER_SECONDS, "key": key},
                )
        return slot, slot - now

    def confirm(self, token: str | None, slot: float) -> None:
        """Move a slot to the moment the request really goes (a process woken late, on a
        busy machine, would otherwise send later than its slot, closer to the slots that
        follow): the next reservations count from when it was sent."""
        key = self._digest(token or "")
        with self._db.engine.begin() as connection:
            row = connection.execute(
                text(
                    "SELECT slots, extract(epoch FROM clock_timestamp()) FROM rate_windows "
                    "WHERE key = :key FOR UPDATE"
                ),
                {"key": key},
            ).one_or_none()
            if row is None:
                return
            slots = [float(s) for s in json.loads(row[0])]
            now = float(row[1])
            if slot not in slots or now <= slot:
                return
            slots[slots.index(slot)] = now
            connection.execute(
                text("UPDATE rate_windows SET slots = :slots, updated = :now WHERE key = :key"),
                {"slots": json.dumps(sorted(slots)), "now": now, "key": key},
            )

    def acquire(self, token: str | None) -> float:
        """Take one slot, sleeping until it is due; returns the seconds waited."""
        try:
            slot, wait = self._reserve(token)
            if wait > 0:
                self._clock.sleep(wait)
            self.confirm(token, slot)
        except SQLAlchemyError as error:
            log.warning(
                "the shared rate budget could not be read (%s): this process keeps its own",
                type(error).__name__,
            )
            return self._fallback.acquire(token)
        return max(0.0, wait)


def budgets_for(db: Database, rate: float, digest: Callable[[str], str]) -> Budgets | None:
    """Shared budgets when the control database is PostgreSQL; None (each process's own
    windows) otherwise."""
    if db.engine.dialect.name != "postgresql":
        return None
    return DatabaseBudgets(db, rate, digest)
