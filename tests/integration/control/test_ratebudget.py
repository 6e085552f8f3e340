"""The rate budget shared through a PostgreSQL control database: slots of one token
handed to several processes (here: budgets of their own, in threads) keep at most 10 in
any 1.1 s; tokens are only stored as keyed hashes; other tokens are not slowed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from audiencesync.control.db import Database
from audiencesync.control.ratebudget import DatabaseBudgets, budgets_for
from audiencesync.control.secrets import SecretBox
from audiencesync.http import SystemClock

TOKEN = "access-token-of-one-connection"


@pytest.fixture
def database(postgres_schema_url: str) -> Iterator[Database]:
    db = Database(postgres_schema_url)
    db.migrate()
    yield db
    db.dispose()


def test_several_budgets_on_one_token_hand_out_at_most_ten_slots_in_any_window(
    database: Database,
) -> None:
    box = SecretBox.from_passphrase("shared key")
    # Three "processes", each with its own budgets object over the same table.
    budgets = [DatabaseBudgets(database, 10.0, box.digest) for _ in range(3)]
    with ThreadPoolExecutor(6) as pool:
        taken = list(pool.map(lambda n: budgets[n % 3]._reserve(TOKEN), range(30)))
    slots = sorted(slot for slot, _ in taken)  # on the database's clock
    # Any request and the tenth after it are a whole window (1.1 s) apart.
    for earlier, later in zip(slots, slots[10:], strict=False):
        assert later - earlier >= 1.1 - 1e-6  # float seconds since 1970
    assert max(wait for _, wait in taken) > 1.5  # 30 slots reach past two seconds
    with database.engine.connect() as connection:
        rows = connection.execute(text("SELECT key, slots FROM rate_windows")).all()
    assert len(rows) == 1
    key = rows[0][0]
    assert TOKEN not in key
    assert key == box.digest(TOKEN) != SecretBox.from_passphrase("other key").digest(TOKEN)
    other = budgets[0].reserve("another token")
    assert other == pytest.approx(0.0, abs=0.05)  # another token's budget is its own


class _WakesLate(SystemClock):
    """The first sleep ends ``late`` seconds late (a busy machine); ``meanwhile`` runs
    during it, as other processes would."""

    def __init__(self, late: float, meanwhile: Callable[[], None]) -> None:
        self._late = late
        self._meanwhile: Callable[[], None] | None = meanwhile

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        if self._meanwhile is not None:
            hook, self._meanwhile = self._meanwhile, None
            hook()
            super().sleep(self._late)


def _database_now(database: Database) -> float:
    with database.engine.connect() as connection:
        now = connection.execute(text("SELECT extract(epoch FROM clock_timestamp())"))
        return float(now.scalar_one())


def test_a_process_woken_late_gives_its_slot_up_instead_of_sending_beside_the_next(
    database: Database,
) -> None:
    box = SecretBox.from_passphrase("shared key")
    other = DatabaseBudgets(database, 10.0, box.digest)
    # Another process sends each request at its slot (database seconds).
    sent = [other._reserve(TOKEN)[0] for _ in range(10)]  # ten now

    def others_take_theirs() -> None:
        # While the late process sleeps towards its slot (1.1 s on), the other takes
        # the nine other slots then and the ten of the window after.
        sent.extend(other._reserve(TOKEN)[0] for _ in range(19))

    late = DatabaseBudgets(database, 10.0, box.digest, _WakesLate(0.3, others_take_theirs))
    late.acquire(TOKEN)  # wakes 0.3 s after its slot
    sent.append(_database_now(database))  # and sends now
    sent.sort()
    assert len(sent) == 30
    # What Snapchat sees: never more than 10 requests of the token in any second.
    for earlier, later in zip(sent, sent[10:], strict=False):
        assert later - earlier >= 1.0, sent


def test_sqlite_keeps_each_process_s_own_windows(tmp_path: object) -> None:
    db = Database(f"sqlite:///{tmp_path}/control.db")
    try:
        assert budgets_for(db, 10.0, str) is None
    finally:
        db.dispose()
