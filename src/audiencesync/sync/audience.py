"""Readings of an export's audience over time: identifiers held, match rate and drift.

Snapchat matches an upload asynchronously (``upload_status`` PROCESSING, then COMPLETE,
minutes to hours later), so one read-back at the end of a run says little. Every reading
(at the end of a run, by the scheduler afterwards, or on demand) is stored with its time
and with the identifiers audiencesync held confirmed in the audience at that moment
(counted from the confirmed snapshot, never summed from runs).

- **Follow-up readings**: after a reading that finds the upload still processing (or
  that failed) the next is due 1, 5, 15, then 60 minutes later; after that, and after
  every completed reading, once a day (the daily reading is what notices an audience
  changed behind audiencesync's back without any run).
- **Match rate** of a completed reading: matched users / identifiers held. A person with
  an email and a phone is two identifiers and at most one user, so the rate is at most 1.
- **Drift** (:func:`detect_drift`): a completed reading that the match-rate model cannot
  explain marks the export "audience may have drifted", with the figures, until a later
  completed reading agrees or a ``--replace`` run rebuilds the audience.

This module knows the control database and the snapshot; reading Snapchat is the
caller's (``sync.runs``), so nothing here talks to a destination.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from audiencesync.control.context import Context
from audiencesync.control.sync_models import AudienceReading, Export, ExportAudienceState, Run
from audiencesync.storage import Storage
from audiencesync.sync import snapshot as snapshot_module
from audiencesync.sync.snapshot import Snapshot

log = logging.getLogger(__name__)

PROCESSING = "PROCESSING"
COMPLETE = "COMPLETE"

#: Delays before the next reading while the upload is still processing; then DAILY.
FOLLOW_UP_DELAYS = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(minutes=60),
)
DAILY = timedelta(days=1)
#: A scheduler that took a due reading holds it this long (another scheduler skips it).
CLAIM = timedelta(minutes=5)

# The drift rule (docs/sync.md, "Drift"):
#: matched users may exceed the identifiers held by this share plus DRIFT_SLACK_USERS
#: (Snapchat's figure is approximate) before the audience is said to hold more than sent.
DRIFT_SLACK_SHARE = 0.02
DRIFT_SLACK_USERS = 10
#: the export's usual match rate: the median of its last completed, agreeing readings.
HISTORY_READINGS = 10
#: a rate outside [usual x LOW, usual x HIGH] is "far outside the export's own history".
HISTORY_LOW = 0.5
HISTORY_HIGH = 2.0
#: below this many identifiers held the approximate figure is too coarse for history.
HISTORY_MIN_HELD = 100

#: with at least HISTORY_MIN_HELD identifiers held, a completed reading under this match
#: rate (0 matched users among them) is drift on its own, with no history needed.
EMPTY_RATE = 0.01

MORE_USERS_THAN_IDENTIFIERS = "more_users_than_identifiers"
EMPTIED = "emptied"
BELOW_HISTORY = "below_history"
ABOVE_HISTORY = "above_history"


@dataclass(frozen=True)
class Reading:
    """What the destination said of the audience (or why it could not be read)."""

    approximate_number_users: int | None
    upload_status: str | None
    targetable_status: str | None
    error: str | None = None


@dataclass(frozen=True)
class ReadingView:
    id: int
    run_id: int | None
    read_at: datetime
    trigger: str
    approximate_number_users: int | None
    upload_status: str | None
    targetable_status: str | None
    identifiers_held: int | None
    error: str | None
    drifted: bool

    @property
    def complete(self) -> bool:
        """Snapchat finished matching: the size is the matched size of what was held."""
        return self.error is None and self.upload_status == COMPLETE

    @property
    def match_rate(self) -> float | None:
        """Matched users / identifiers held, for a completed reading with something held."""
        return match_rate(self.approximate_number_users, self.identifiers_held, self.complete)


def match_rate(matched: int | None, held: int | None, complete: bool) -> float | None:
    if not complete or matched is None or not held:
        return None
    return matched / held


@dataclass(frozen=True)
class Drift:
    """A completed reading that the match-rate model cannot explain, with its figures."""

    rule: str
    reason: str
    identifiers_held: int
    approximate_number_users: int
    match_rate: float | None
    usual_match_rate: float | None
    reading_id: int
    read_at: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AudienceSummary:
    """What an export shows of its audience: the latest reading and what is held now.

    The one place that decides which figures of the latest reading are reported (the
    CLI's text and ``--json``, the API and the pages all read these properties): the
    matched size only of a completed reading, and nothing of a reading taken before an
    emptying that is not finished (a clear or replace half done): null and "pending",
    never a size from before the audience was emptied beside what is held now.
    """

    identifiers_held: int | None
    latest: ReadingView | None
    next_reading_at: datetime | None
    drift: dict[str, Any] | None
    #: why ``identifiers_held`` is None, in plain words (None when it is known).
    held_unknown: str | None = None
    #: a clear or replace of the audience is begun and not confirmed (its marker is on
    #: disk): every stored reading is older than it.
    emptying_pending: bool = False

    @property
    def stale(self) -> bool:
        """The latest reading was taken before an emptying still in progress."""
        return self.latest is not None and self.emptying_pending

    @property
    def reported(self) -> ReadingView | None:
        """The latest reading if its figures may be shown now (not older than an emptying)."""
        return None if self.stale else self.latest

    @property
    def approximate_number_users(self) -> int | None:
        """Matched users as reported everywhere: a completed reading's size, else None."""
        r = self.reported
        return r.approximate_number_users if r is not None and r.complete else None

    @property
    def upload_status(self) -> str | None:
        r = self.reported
        return r.upload_status if r is not None else None

    @property
    def targetable_status(self) -> str | None:
        r = self.reported
        return r.targetable_status if r is not None else None

    @property
    def reading_error(self) -> str | None:
        r = self.reported
        return r.error if r is not None else None

    @property
    def match_rate(self) -> float | None:
        """The latest reading's rate, from that reading's own held figure (one moment)."""
        r = self.reported
        return r.match_rate if r is not None else None

    @property
    def held_changed(self) -> bool:
        """What is held now differs from what was held at the latest reading."""
        return self.latest is not None and self.latest.identifiers_held != self.identifiers_held

    @property
    def read_at(self) -> datetime | None:
        return self.latest.read_at if self.latest else None

    @property
    def pending(self) -> bool:
        """The matched size is not known yet: the latest reading is still processing,
        unreadable, or older than an emptying in progress."""
        return self.latest is not None and (self.stale or not self.latest.complete)


def _view(row: AudienceReading) -> ReadingView:
    return ReadingView(
        id=row.id, run_id=row.run_id, read_at=row.read_at, trigger=row.trigger,
        approximate_number_users=row.approximate_number_users, upload_status=row.upload_status,
        targetable_status=row.targetable_status, identifiers_held=row.identifiers_held,
        error=row.error, drifted=row.drifted,
    )  # fmt: skip


#: Why nothing held is claimed while an emptying is begun and not confirmed.
EMPTYING_UNCONFIRMED = (
    "an emptying of the audience (a clear or a replace) was begun and is not confirmed: "
    "Snapchat may or may not have emptied it; the next run finishes it"
)


def held_claim(storage: Storage, export_id: int, audience_id: str, held: int | None) -> int | None:
    """The one rule for what an export may claim it holds: ``held``, or None (unknown)
    while a clear or replace is half done (its marker is on disk: the snapshot then
    claims members the audience may no longer have, so no figure is true).

    Used by :func:`count_held` (what a reading stores) and :func:`summary` (what the CLI,
    the API and the page show), so the two never disagree.
    """
    if held is None or snapshot_module.clear_pending(storage, export_id, audience_id):
        return None
    return held


def count_held(ctx: Context, export_id: int, audience_id: str) -> int | None:
    """Identifiers confirmed in the audience (all types), from the snapshot; None while a
    clear is half done (:func:`held_claim`)."""
    if held_claim(ctx.storage, export_id, audience_id, 0) is None:
        return None
    snapshot = Snapshot.of(ctx, export_id, audience_id)
    return held_claim(ctx.storage, export_id, audience_id, sum(snapshot.held().values()))


def _state(session: Session, export_id: int) -> ExportAudienceState:
    state = session.get(ExportAudienceState, export_id)
    if state is None:
        state = ExportAudienceState(export_id=export_id, follow_ups=0)
        session.add(state)
        session.flush()
    return state


def note_change(
    session: Session, export_id: int, *, held: int | None, run_id: int, at: datetime
) -> None:
    """A run or clear changed the audience: record what is held and restart follow-ups.

    ``held`` None: what the audience holds is not known (a run that failed or was killed,
    a clear not confirmed); the export then shows "unknown", never the figure before.
    """
    state = _state(session, export_id)
    state.identifiers_held = held
    state.held_at = at
    state.run_id = run_id
    state.follow_ups = 0
    state.next_reading_at = at + FOLLOW_UP_DELAYS[0]


def audience_moved(session: Session, export_id: int) -> None:
    """The export now targets another audience: nothing known of the old one carries over."""
    state = session.get(ExportAudienceState, export_id)
    if state is None:
        return
    state.identifiers_held = None
    state.held_at = None
    state.run_id = None
    state.follow_ups = 0
    state.next_reading_at = None
    state.drift = None


def clear_drift(session: Session, export_id: int) -> None:
    """The audience was rebuilt from scratch (a replace): nothing drifted any more."""
    _state(session, export_id).drift = None


def _usual_rate(session: Session, export_id: int, audience_id: str, before: int) -> float | None:
    rows = session.scalars(
        select(AudienceReading)
        .where(
            AudienceReading.export_id == export_id,
            AudienceReading.audience_id == audience_id,
            AudienceReading.id < before,
            AudienceReading.drifted.is_(False),
            AudienceReading.error.is_(None),
            AudienceReading.upload_status == COMPLETE,
            AudienceReading.identifiers_held >= HISTORY_MIN_HELD,
        )
        .order_by(AudienceReading.id.desc())
        .limit(HISTORY_READINGS)
    ).all()
    rates = [r.approximate_number_users / r.identifiers_held for r in rows
             if r.approximate_number_users is not None and r.identifiers_held]  # fmt: skip
    return statistics.median(rates) if rates else None


def detect_drift(
    *,
    held: int,
    matched: int,
    usual_rate: float | None,
    reading_id: int,
    read_at: datetime,
) -> Drift | None:
    """Whether a completed reading disagrees with what audiencesync holds; the figures.

    The rule (one place, documented in docs/sync.md):
    1. more matched users than identifiers held (beyond ``DRIFT_SLACK_SHARE`` and
       ``DRIFT_SLACK_USERS`` of rounding): each held identifier matches at most one user,
       so the audience holds members audiencesync did not send (or did remove);
    2. with at least ``HISTORY_MIN_HELD`` identifiers held, a match rate under
       ``EMPTY_RATE`` (0 matched users, say): the audience was emptied or lost nearly
       everyone; no history is needed, so a first completed reading is judged too;
    3. with at least ``HISTORY_MIN_HELD`` identifiers held and a usual rate (the median of
       the export's last ``HISTORY_READINGS`` completed readings of the same audience that
       agreed), a match rate under ``HISTORY_LOW`` or over ``HISTORY_HIGH`` times the usual.
    """
    rate = matched / held if held else None
    found = _drift_rule(held=held, matched=matched, rate=rate, usual_rate=usual_rate)
    if found is None:
        return None
    rule, reason = found
    return Drift(
        rule=rule, reason=reason, identifiers_held=held, approximate_number_users=matched,
        match_rate=rate, usual_match_rate=usual_rate, reading_id=reading_id,
        read_at=read_at.isoformat(),
    )  # fmt: skip


def _drift_rule(
    *, held: int, matched: int, rate: float | None, usual_rate: float | None
) -> tuple[str, str] | None:
    if matched > held * (1 + DRIFT_SLACK_SHARE) + DRIFT_SLACK_USERS:
        return MORE_USERS_THAN_IDENTIFIERS, (
            f"Snapchat reports about {matched:,} matched users but audiencesync holds only "
            f"{held:,} identifiers in the audience: it holds members audiencesync did not "
            "send (or kept ones it removed). Repair it with a replace run."
        )
    if rate is not None and held >= HISTORY_MIN_HELD and rate < EMPTY_RATE:
        return EMPTIED, (
            f"Snapchat reports about {matched:,} matched users for the {held:,} identifiers "
            f"audiencesync holds (match rate {rate:.1%}, under {EMPTY_RATE:.0%}): the audience "
            "may have been emptied outside audiencesync. Repair it with a replace run."
        )
    if rate is None or usual_rate is None or usual_rate <= 0 or held < HISTORY_MIN_HELD:
        return None
    below = rate < usual_rate * HISTORY_LOW
    if not below and rate <= usual_rate * HISTORY_HIGH:
        return None
    return BELOW_HISTORY if below else ABOVE_HISTORY, (
        f"Snapchat reports about {matched:,} matched users for the {held:,} identifiers "
        f"audiencesync holds (match rate {rate:.1%}), "
        + ("under half" if below else "over twice")
        + f" this export's usual {usual_rate:.1%}: the audience may have "
        + ("lost members" if below else "gained members")
        + " outside audiencesync. Repair it with a replace run."
    )


def drift_detected(ctx: Context, export_name: str, drift: Drift) -> None:
    """Called once when an export's audience is newly found drifted (the alert point).

    Runs after the reading and the drift are committed (``drift.as_json()`` is what the
    export stores and shows); an exception here never undoes them (the caller logs it).
    The figures are counts only: no identifier, hash or token.
    """
    log.warning("export %s: audience may have drifted (%s)", export_name, drift.rule)


def record_reading(
    session: Session,
    export: Export,
    reading: Reading,
    *,
    held: int | None,
    trigger: str,
    at: datetime,
    check_drift: bool = True,
) -> tuple[ReadingView, Drift | None]:
    """Store one reading, schedule the next and check it for drift.

    Returns the stored reading and, when this reading newly marks the export drifted,
    the drift (for :func:`drift_detected`, once the session is committed).
    """
    state = _state(session, export.id)
    # What is held now is what this reading counted (None: not known at this moment).
    state.identifiers_held = held
    state.held_at = at
    row = AudienceReading(
        export_id=export.id, run_id=state.run_id, audience_id=export.audience_id,
        read_at=at, trigger=trigger,
        approximate_number_users=reading.approximate_number_users,
        upload_status=reading.upload_status, targetable_status=reading.targetable_status,
        identifiers_held=held, error=reading.error, drifted=False,
    )  # fmt: skip
    session.add(row)
    session.flush()
    view = _view(row)
    if view.complete and held is not None:
        state.follow_ups = 0
        state.next_reading_at = at + DAILY
    else:
        # Still matching, unreadable, or nothing known of what is held: read again soon.
        step = state.follow_ups
        state.next_reading_at = at + (
            FOLLOW_UP_DELAYS[step] if step < len(FOLLOW_UP_DELAYS) else DAILY
        )
        state.follow_ups = step + 1
    matched = reading.approximate_number_users
    # A completed reading without a size says nothing of the audience: no verdict on it.
    if not (check_drift and view.complete and held is not None and matched is not None):
        return view, None
    found = detect_drift(
        held=held, matched=matched,
        usual_rate=_usual_rate(session, export.id, export.audience_id, row.id),
        reading_id=row.id, read_at=at,
    )  # fmt: skip
    if found is None:
        state.drift = None
        return view, None
    row.drifted = True
    newly = state.drift is None
    state.drift = found.as_json()
    return _view(row), found if newly else None


def summary(session: Session, export_id: int, storage: Storage) -> AudienceSummary:
    """The export's latest reading, identifiers held now, next reading and drift.

    What is held follows :func:`held_claim` (unknown while a clear or replace is half
    done), the same rule a reading's count follows.
    """
    state = session.get(ExportAudienceState, export_id)
    audience_id = session.scalar(select(Export.audience_id).where(Export.id == export_id))
    # Only a reading of the audience the export targets now (not of one it moved from).
    latest = session.scalar(
        select(AudienceReading)
        .where(AudienceReading.export_id == export_id, AudienceReading.audience_id == audience_id)
        .order_by(AudienceReading.id.desc())
        .limit(1)
    )
    stored = state.identifiers_held if state else None
    emptying = snapshot_module.clear_pending(storage, export_id, audience_id or "")
    held = held_claim(storage, export_id, audience_id or "", stored)
    if held is not None:
        unknown: str | None = None
    else:
        unknown = _unknown_reason(session, state, emptying=emptying)
    return AudienceSummary(
        identifiers_held=held,
        latest=_view(latest) if latest is not None else None,
        next_reading_at=state.next_reading_at if state else None,
        drift=dict(state.drift) if state and state.drift else None,
        held_unknown=unknown,
        emptying_pending=emptying,
    )


def _unknown_reason(session: Session, state: ExportAudienceState | None, *, emptying: bool) -> str:
    """Why what the audience holds is not known, in plain words."""
    run = session.get(Run, state.run_id) if state is not None and state.run_id is not None else None
    if run is not None and run.status in ("failed", "interrupted", "cancelled"):
        what = "the clear" if run.trigger == "clear" else "the run"
        if emptying:
            return (
                f"{what} (run {run.id}) ended {run.status} while emptying the audience: "
                "Snapchat may or may not have emptied it; the next run finishes the emptying"
            )
        return (
            f"{what} (run {run.id}) ended {run.status} before Snapchat confirmed what the "
            "audience holds; the audience is read again shortly and the next run settles it"
        )
    if emptying:
        return EMPTYING_UNCONFIRMED
    if state is None or state.held_at is None:
        return "no run yet"
    return EMPTYING_UNCONFIRMED


def list_readings(session: Session, export_id: int, *, limit: int = 200) -> list[ReadingView]:
    """The export's latest ``limit`` readings, oldest first."""
    rows = session.scalars(
        select(AudienceReading)
        .where(AudienceReading.export_id == export_id)
        .order_by(AudienceReading.id.desc())
        .limit(limit)
    ).all()
    return [_view(r) for r in reversed(rows)]


def due_exports(session: Session, now: datetime) -> list[int]:
    """Exports whose next reading is due at ``now``."""
    return list(
        session.scalars(
            select(ExportAudienceState.export_id)
            .where(ExportAudienceState.next_reading_at <= now)
            .order_by(ExportAudienceState.next_reading_at)
        )
    )


def claim_due(session: Session, export_id: int, now: datetime) -> bool:
    """Take a due reading (another scheduler then skips it for ``CLAIM``)."""
    taken = session.execute(
        update(ExportAudienceState)
        .where(
            ExportAudienceState.export_id == export_id,
            ExportAudienceState.next_reading_at <= now,
        )
        .values(next_reading_at=now + CLAIM)
    )
    return int(getattr(taken, "rowcount", 0)) == 1


def postpone(session: Session, export_id: int, until: datetime) -> None:
    session.execute(
        update(ExportAudienceState)
        .where(ExportAudienceState.export_id == export_id)
        .values(next_reading_at=until)
    )
