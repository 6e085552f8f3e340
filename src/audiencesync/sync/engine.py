"""One run of an export: members -> identifiers -> plan -> push -> confirm -> read back.

1. The union of the export's segments is streamed (each profile once) with the mapped
   identifier fields; each field is normalized and hashed; empty values are counted apart
   and invalid ones by reason, with up to 100 (profile key, reason) samples, never a value.
2. The hashed set is diffed against the confirmed snapshot with DuckDB anti-joins: adds,
   and in mirror mode removals. ``full`` re-sends every current identifier.
3. Batches of at most the destination's limit, one identifier type each, go out from a
   small thread pool; every acknowledged batch is journaled at once, so a run killed at
   any instant is resumed by the next run with nothing lost. Adds go out while the next
   type is planned; removals wait until every type is planned, for the removal guard: a
   mirror run that would remove more than the export's share of what it holds (or
   everything, its segments having become empty) sends its adds, keeps its removals in
   the snapshot's ``held/`` folder and ends ``needs_approval`` (see ``send_held``).
4. The audience is read back and stored with the run (``sync.audience`` keeps reading
   it afterwards until Snapchat has matched the upload).

A replace run (``RunInput.replace``) collects members and plans the mirror diff first;
only if the removal guard lets that diff's removals through does it empty the audience,
crash-safe like a clear (the snapshot's clear marker), and upload every current member.
If the guard holds them, the run goes on as that mirror run and nothing is emptied; with
no member (or no usable identifier) it is refused (``_replace_or_hold``).

The figures a run records are described in docs/sync.md ("Numbers"); ``RunOutcome.counts``
writes them.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from audiencesync import duck
from audiencesync.control.context import Context
from audiencesync.destinations.base import BatchResult, Destination
from audiencesync.errors import (
    AudiencesyncError,
    ConflictError,
    DestinationError,
    Fix,
    ReauthenticationRequiredError,
)
from audiencesync.identifiers import (
    HASH_SQL,
    PREPARED_SCHEMA,
    PreparedBatch,
    RejectReason,
    prepare_batch,
)
from audiencesync.logs import redact
from audiencesync.segments.membership import KEY_COLUMN, stream_members
from audiencesync.sync import suppression
from audiencesync.sync.snapshot import ADD, REMOVE, Snapshot, read_batches, scratch_parquet
from audiencesync.types import IdentifierType

log = logging.getLogger(__name__)

MAX_SAMPLES_PER_REASON = 100
MEMBER_BATCH_ROWS = 100_000
#: the share of held identifiers a mirror run may remove without approval, by default.
DEFAULT_MAX_REMOVAL_SHARE = 0.2
#: ``Run.counts`` layout version (docs/sync.md, "Numbers").
COUNTS_VERSION = 2
NEEDS_APPROVAL = "needs_approval"
#: a --full run's adds of hashes already confirmed (sent as adds, counted ``resent``).
RESEND = "resend"
#: removals of suppressed, erased or withdrawn-consent hashes: sent at once, never held
#: by the removal guard (privacy wins; docs/privacy.md), counted in ``removed`` too.
WITHDRAW = "withdraw"
REMOVALS = frozenset({REMOVE, WITHDRAW})
#: the per-type rule applies to a type holding at least this many identifiers ...
MIN_HELD_PER_TYPE_SHARE = 10
#: ... and removing every identifier of a type is held from this many on.
MIN_HELD_PER_TYPE_ALL = 3


@dataclass(frozen=True)
class RunInput:
    """What the engine needs to know of an export for one run."""

    export_id: int
    audience_id: str
    segments: tuple[str, ...]
    fields: dict[IdentifierType, str]
    default_country: str | None
    mirror: bool
    dry_run: bool = False
    full: bool = False
    #: empty the audience first, then upload every current member (repairs drift).
    replace: bool = False
    #: removals above this share of the held identifiers wait for approval (mirror).
    max_removal_share: float = DEFAULT_MAX_REMOVAL_SHARE
    #: (removed, added) by each of the export's runs in the guard's rolling window, newest
    #: first (the last 24 hours, since the latest approval, clear or replace if later;
    #: ``sync.runs.recent_changes``).
    recent: tuple[tuple[int, int], ...] = ()
    #: the window in words, for the guard's sentence.
    window: str = "in the last 24 hours"
    #: the field holding consent, and the values meaning consent (none: a boolean field).
    consent_field: str | None = None
    consent_values: tuple[str, ...] = ()
    #: per type, the hashes never sent and removed where held (lists and erasures) and
    #: the normalized identifiers of members without consent (``sync.suppression``).
    suppressed: dict[IdentifierType, Path] = field(default_factory=dict)
    withdrawn: dict[IdentifierType, Path] = field(default_factory=dict)


@dataclass
class Guard:
    """The removal guard's decision for one run (``counts.guard``)."""

    #: identifiers audiencesync held confirmed before the run, all types.
    held: int
    #: removals the plan holds back, per type.
    held_removes: dict[str, int]
    threshold: float
    #: why: "segments_empty" or "share_above_threshold".
    reason: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "held": self.held,
            "held_removes": dict(self.held_removes),
            "threshold": self.threshold,
            "reason": self.reason,
            "message": self.message,
        }


@dataclass
class RunOutcome:
    """Counters and errors of a run, updated as it goes (read by progress reporters)."""

    phase: str = "starting"
    members: int = 0
    #: members none of whose mapped fields gave an accepted identifier.
    members_without_identifier: int = 0
    #: per type: members whose field holds a value (not empty after trimming).
    values_present: dict[str, int] = field(default_factory=dict)
    #: per type: members whose field is empty or missing (never a reject).
    empty: dict[str, int] = field(default_factory=dict)
    #: per type: values accepted (normalized and hashed).
    accepted: dict[str, int] = field(default_factory=dict)
    #: per type mapped to a list field only: values present in the members' lists, each
    #: counted (``accepted + rejected = values``; a unified dataset's all_values field).
    values: dict[str, int] = field(default_factory=dict)
    #: per type, per reason: values present but invalid.
    rejected: dict[str, dict[str, int]] = field(default_factory=dict)
    reject_samples: dict[str, list[list[str]]] = field(default_factory=dict)
    #: per type: distinct hashes the plan adds that were not confirmed before the run.
    planned_adds: dict[str, int] = field(default_factory=dict)
    planned_removes: dict[str, int] = field(default_factory=dict)
    #: per type: already-confirmed hashes a --full run plans to send again (not adds).
    planned_resends: dict[str, int] = field(default_factory=dict)
    #: per type: acknowledged adds of hashes not confirmed before the run (new adds only).
    added: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)
    #: acknowledged re-sends of already-confirmed hashes (--full), never in ``added``.
    resent: int = 0
    failed: int = 0
    requests: int = 0
    bytes_sent: int = 0
    retries: int = 0
    throttled: int = 0
    #: per type: identifiers confirmed in the audience (the snapshot) when the run ended.
    confirmed: dict[str, int] = field(default_factory=dict)
    guard: Guard | None = None
    #: whether the removals were held back (a real run; a dry run only reports ``guard``).
    held: bool = False
    #: per type: identifiers confirmed before the run (of the types the plan diffed).
    held_before: dict[str, int] = field(default_factory=dict)
    #: the removal files held back (moved to the snapshot's ``held/`` folder at the end).
    held_files: list[tuple[str, IdentifierType, Path, int]] = field(default_factory=list)
    batches_done: int = 0
    batches_total: int = 0
    errors: list[str] = field(default_factory=list)
    audience: dict[str, Any] = field(default_factory=dict)
    cancelled: bool = False
    fatal: bool = False
    #: the audience was emptied by this run before its upload (a replace, or a clear
    #: that was killed half way and is finished here).
    emptied: bool = False
    #: identifiers the snapshot held when the emptying began (what the emptying removed).
    emptied_held: int | None = None
    #: identifiers confirmed in the audience at the end (None: not counted, nothing sent).
    identifiers_held: int | None = None
    #: every type was planned (False when a send error stopped the run while planning).
    planned_all: bool = False
    planning_incomplete: bool = False
    #: an approval: held removals not sent because their profiles are members again.
    skipped_members: dict[str, int] = field(default_factory=dict)
    #: Wall seconds per phase ("planning" overlaps "sending": types are diffed while sent).
    seconds: dict[str, float] = field(default_factory=dict)
    #: per type: distinct identifiers of members a suppression list or erasure withholds.
    suppressed: dict[str, int] = field(default_factory=dict)
    #: members without consent (None: the export names no consent field).
    no_consent: int | None = None
    #: per type: planned removals of excluded hashes (``WITHDRAW``), part of planned_removes.
    privacy_removes: dict[str, int] = field(default_factory=dict)

    @contextmanager
    def timing(self, phase: str) -> Iterator[None]:
        """Add the wall time of the ``with`` block to ``phase``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self.seconds[phase] = round(self.seconds.get(phase, 0.0) + elapsed, 3)

    @property
    def to_send(self) -> int:
        """Identifiers this run means to send now (held removals are not among them)."""
        held = sum(number for *_, number in self.held_files)
        planned = sum(self.planned_adds.values()) + sum(self.planned_removes.values())
        return planned + sum(self.planned_resends.values()) - held

    @property
    def sent(self) -> int:
        return sum(self.added.values()) + sum(self.removed.values()) + self.resent

    def counts(self, *, dry_run: bool = False) -> dict[str, Any]:
        """The run's figures (docs/sync.md, "Numbers"); a dry run has no sent figures."""
        result: dict[str, Any] = {
            "version": COUNTS_VERSION,
            "dry_run": dry_run,
            "members": self.members,
            "members_without_identifier": self.members_without_identifier,
            "values_present": dict(self.values_present),
            "empty": dict(self.empty),
            "accepted": dict(self.accepted),
            **({"values": dict(self.values)} if self.values else {}),
            "rejected": {k: dict(v) for k, v in self.rejected.items()},
            "planned_adds": dict(self.planned_adds),
            "planned_removes": dict(self.planned_removes),
            **({"planned_resends": dict(self.planned_resends)} if self.planned_resends else {}),
            "confirmed": dict(self.confirmed),
            "seconds": dict(self.seconds),
            **({"emptied": True} if self.emptied else {}),
            **({"emptied_held": self.emptied_held} if self.emptied_held is not None else {}),
            **({"planning_incomplete": True} if self.planning_incomplete else {}),
            **({"skipped_members": dict(self.skipped_members)} if self.skipped_members else {}),
            "suppressed": dict(self.suppressed),
            **({"privacy_removes": dict(self.privacy_removes)} if self.privacy_removes else {}),
            **({"no_consent": self.no_consent} if self.no_consent is not None else {}),
        }
        if self.guard is not None:
            result["guard"] = self.guard.as_dict()
        # A dry run sent nothing: added and removed are empty (0), the rest is absent.
        result.update(added=dict(self.added), removed=dict(self.removed))
        if not dry_run:
            result.update(
                resent=self.resent,
                failed=self.failed,
                requests=self.requests,
                retries=self.retries,
                throttled=self.throttled,
                bytes_sent=self.bytes_sent,
            )
        return result

    def progress(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "done": self.sent,
            "total": self.to_send,
            "batches_done": self.batches_done,
            "batches_total": self.batches_total,
        }

    def status(self) -> str:
        if self.cancelled:
            return "cancelled"
        if self.fatal or (self.errors and self.sent == 0 and self.to_send > 0):
            return "failed"
        if self.held:
            return NEEDS_APPROVAL
        if self.errors:
            return "partially_succeeded"
        return "succeeded"


def identifier_values(column: pa.Array | pa.ChunkedArray) -> tuple[Any, pa.Array | None]:
    """A mapped field's values, one per identifier, and for a list field (every email of
    a unified profile) the index of the member each value belongs to (None otherwise)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        return pc.list_flatten(column), pc.list_parent_indices(column)
    return column, None


def _members_with(parents: pa.Array, where: pa.Array, members: int) -> pa.Array:
    """Whether each of ``members`` members has a list value for which ``where`` holds."""
    owners = pc.unique(pc.filter(parents, where))
    return pc.is_in(pa.array(range(members), pa.int64()), value_set=pc.cast(owners, pa.int64()))


Reporter = Callable[[RunOutcome], None]
CancelCheck = Callable[[], bool]


def collect_identifiers(
    ctx: Context, run: RunInput, work: Path, outcome: RunOutcome, report: Reporter
) -> dict[IdentifierType, Path]:
    """Stream members and normalize each mapped field; one file per identifier type.

    The files hold the accepted values normalized but not hashed (``PREPARED_SCHEMA``):
    the plan hashes them in DuckDB inside its diff query, so the 64-character hashes of
    the values that did not change are never copied out of DuckDB, written or read back.
    """
    outcome.phase = "reading members"
    report(outcome)
    fields = list(dict.fromkeys(run.fields.values()))
    if run.consent_field is not None:
        outcome.no_consent = outcome.no_consent or 0
        fields = list(dict.fromkeys([*fields, run.consent_field]))
    salt = secrets.token_bytes(16)
    paths = {kind: work / f"current-{kind.value}.parquet" for kind in run.fields}
    writers = {
        kind: pq.ParquetWriter(**scratch_parquet(path, PREPARED_SCHEMA))
        for kind, path in paths.items()
    }

    def prepare(kind: IdentifierType, column: pa.Array) -> tuple[PreparedBatch, pa.Array | None]:
        values, parents = identifier_values(column)
        return prepare_batch(kind, values, default_country=run.default_country), parents

    def take(
        batch: pa.RecordBatch,
        jobs: dict[IdentifierType, Future[tuple[PreparedBatch, pa.Array | None]]],
    ) -> None:
        keys = batch.column(KEY_COLUMN)
        usable: pa.Array | None = None
        for kind, job in jobs.items():
            prepared, parents = job.result()
            accepted_here = pc.is_null(prepared.reasons)
            empty = int(prepared.rejected.get(RejectReason.EMPTY, 0))
            values = [batch.column(name) for name in fields]
            sample_keys = keys
            if parents is None:
                present_members = batch.num_rows - empty
            else:
                # A list field: one identifier per value; a member is present (usable)
                # when any of its values is present (accepted).
                present = pc.not_equal(prepared.reasons, pa.scalar(RejectReason.EMPTY.value))
                present = pc.fill_null(present, True)
                present_members = int(
                    pc.sum(pc.cast(_members_with(parents, present, batch.num_rows), pa.int64()))
                    .as_py() or 0
                )  # fmt: skip
                accepted_here = _members_with(parents, accepted_here, batch.num_rows)
                _add(outcome.values, kind.value, len(prepared.reasons) - empty)
                sample_keys = pc.take(keys, parents)
                values = [identifier_values(batch.column(run.fields[kind]))[0]]
            usable = accepted_here if usable is None else pc.or_(usable, accepted_here)
            _add(outcome.accepted, kind.value, prepared.accepted)
            _add(outcome.empty, kind.value, batch.num_rows - present_members)
            _add(outcome.values_present, kind.value, present_members)
            invalid = {r: n for r, n in prepared.rejected.items() if r != RejectReason.EMPTY}
            if invalid:
                _count_rejects(outcome, kind, sample_keys, prepared.reasons, invalid, values, salt)
            if prepared.accepted:
                writers[kind].write_table(prepared.rows)
        if usable is not None:
            outcome.members_without_identifier += batch.num_rows - int(
                pc.sum(pc.cast(usable, pa.int64())).as_py() or 0
            )
        report(outcome)

    # Arrow's kernels release the GIL: the types of a batch are normalized side by side
    # in two threads, while this thread reads the next batch of members.
    try:
        with (
            stream_members(ctx, run.segments, fields, batch_rows=MEMBER_BATCH_ROWS) as stream,
            ThreadPoolExecutor(max_workers=2, thread_name_prefix="normalize") as pool,
            suppression.ConsentSplit(run, work, outcome) as consent,
        ):
            pending: (
                tuple[
                    pa.RecordBatch,
                    dict[IdentifierType, Future[tuple[PreparedBatch, pa.Array | None]]],
                ]
                | None
            ) = None
            for batch in consent.filter(stream):
                outcome.members += batch.num_rows
                jobs = {
                    kind: pool.submit(prepare, kind, batch.column(name))
                    for kind, name in run.fields.items()
                }
                if pending is not None:
                    take(*pending)
                pending = (batch, jobs)
            if pending is not None:
                take(*pending)
    finally:
        for writer in writers.values():
            writer.close()
    return paths


def _count_rejects(
    outcome: RunOutcome,
    kind: IdentifierType,
    keys: pa.Array,
    reasons: pa.Array,
    counted: Any,
    values: list[pa.Array],
    salt: bytes,
) -> None:
    per_kind = outcome.rejected.setdefault(kind.value, {})
    for reason, number in counted.items():
        per_kind[str(reason)] = per_kind.get(str(reason), 0) + int(number)
        samples = outcome.reject_samples.setdefault(str(reason), [])
        room = MAX_SAMPLES_PER_REASON - len(samples)
        if room <= 0:
            continue
        where = pc.equal(reasons, pa.scalar(str(reason)))
        picked = pc.filter(keys, where).slice(0, room).to_pylist()
        fields = [pc.filter(column, where).slice(0, room).to_pylist() for column in values]
        samples.extend(
            [sample_key(key, [column[i] for column in fields], salt), kind.value]
            for i, key in enumerate(picked)
        )


def sample_key(key: Any, row_values: list[Any], salt: bytes) -> str:
    """The profile key a reject sample shows, or a placeholder when it could be personal.

    A key that is the value of one of the row's mapped identifier fields (a dataset keyed
    on its email column), or that looks like an identifier (an ``@`` between two
    characters; seven digits or more; 32 hex characters; 36 characters, a UUID's
    length), is replaced by
    ``withheld-<8 hex>``: a digest salted per run, so samples can be told apart but not
    traced back to the value.
    """
    text = str(key)
    stripped = text.strip()
    digits = sum(ch.isdigit() for ch in stripped)
    personal = (
        any(value is not None and str(value).strip() == stripped for value in row_values)
        or bool(re.search(r"[^@\s]@[^@\s]", stripped))
        or (digits >= 7 and not re.search(r"[^\d\s().+-]", stripped))
        or bool(re.fullmatch(r"[0-9a-fA-F]{32}", stripped))
        or len(stripped) == 36
    )
    if not personal:
        return redact(text)
    digest = hashlib.blake2b(text.encode(), key=salt, digest_size=4).hexdigest()
    return f"withheld-{digest}"


def _add(totals: dict[str, int], key: str, number: int) -> None:
    totals[key] = totals.get(key, 0) + number


PlannedFile = tuple[str, IdentifierType, Path, int]
"""(action, identifier type, file of hashes, how many)"""


def plan(
    snapshot: Snapshot,
    current: dict[IdentifierType, Path],
    work: Path,
    run: RunInput,
    outcome: RunOutcome,
    *,
    run_id: int = 0,
) -> Iterator[PlannedFile]:
    """Diff each type's identifiers against its confirmed hashes, one type at a time.

    A generator: the pusher starts sending a type's adds while the next type is being
    planned. Removals are yielded only once every type is planned, and only if the
    removal guard lets them through (:func:`guard`); held ones stay in
    ``outcome.held_files``. Types confirmed earlier but no longer mapped are all removed
    (mirror).
    """
    outcome.phase = "planning"
    # Add-only: a held type no longer mapped still loses its suppressed hashes.
    excluded = set(run.suppressed) | set(run.withdrawn)
    kinds = sorted(set(current) | (snapshot.types() if run.mirror else snapshot.types() & excluded))
    removals: list[PlannedFile] = []
    held_before = 0
    for kind in kinds:
        with outcome.timing("planning"):
            files, confirmed = _diff(snapshot, kind, current.get(kind), work, run, outcome)
        held_before += confirmed
        outcome.held_before[kind.value] = confirmed
        for action, path in files:
            number = pq.ParquetFile(path).metadata.num_rows
            if number:
                totals = (
                    outcome.planned_removes
                    if action in REMOVALS
                    else {RESEND: outcome.planned_resends}.get(action, outcome.planned_adds)
                )
                totals[kind.value] = totals.get(kind.value, 0) + number
                if action == WITHDRAW:
                    _add(outcome.privacy_removes, kind.value, number)
                if action == REMOVE:
                    removals.append((action, kind, path, number))
                else:
                    yield action, kind, path, number
    outcome.planned_all = True
    if not removals:
        return
    outcome.guard = guard(run, outcome, held_before, run_id)
    if outcome.guard is not None and not run.dry_run:
        outcome.held = True
        outcome.held_files = removals
        return
    yield from removals


def _percent(share: float, threshold: float) -> str:
    """``share`` as a percentage that never reads as the threshold when it is not.

    Whole percents (as many decimals as the threshold shows), with one more decimal each
    time rounding would show the share and the threshold alike (20.04% of a 20% threshold
    is "20.04%", never "20.0%, more than 20%"); a share still indistinguishable after
    four more decimals reads "just over 20%".
    """
    limit = _limit(threshold)
    if share == threshold:
        return limit
    # At least as many decimals as the threshold shows (20.6% beside 20.5%, not 21%).
    start = len(limit.rstrip("%").partition(".")[2])
    for decimals in range(start, start + 5):
        shown = f"{share:.{decimals}%}"
        if shown != f"{threshold:.{decimals}%}":
            return shown
    return ("just over " if share > threshold else "just under ") + limit


def _limit(threshold: float) -> str:
    """The threshold itself, exactly as set (0.2 -> "20%", 0.205 -> "20.5%")."""
    return f"{round(threshold * 100, 6):g}%"


def guard(run: RunInput, outcome: RunOutcome, held: int, run_id: int) -> Guard | None:
    """Whether this plan's removals must wait for approval, and the sentence saying why.

    Held when the segments match nobody, no member has a usable identifier, the removals
    exceed the threshold of all identifiers held, or of one type's (a type holding at
    least ``MIN_HELD_PER_TYPE_SHARE``; or every identifier of a type holding at least
    ``MIN_HELD_PER_TYPE_ALL``), or, with the export's recent removals
    (``RunInput.recent``), of the most it held in that window.
    """
    # Privacy removals (suppressed, erased, withdrawn consent) are never held.
    guarded = {
        kind: number - outcome.privacy_removes.get(kind, 0)
        for kind, number in outcome.planned_removes.items()
        if number - outcome.privacy_removes.get(kind, 0)
    }
    removes = sum(guarded.values())
    if not run.mirror or removes == 0:
        return None
    share = removes / held if held else 1.0
    threshold = run.max_removal_share
    limit = _limit(threshold)
    emptied_type = None
    for kind, number in sorted(guarded.items()):
        of_type = outcome.held_before.get(kind, 0)
        if not number or not of_type:
            continue
        type_share = number / of_type
        if (of_type >= MIN_HELD_PER_TYPE_SHARE and type_share > threshold) or (
            of_type >= MIN_HELD_PER_TYPE_ALL and number >= of_type and threshold < 1
        ):
            emptied_type = (kind, number, of_type, type_share)
            break
    # The most the audience held in the window: walking back from now, each run's adds
    # were not held before it and its removals were.
    at_start = peak = held
    for removed, added in run.recent:
        at_start = at_start - added + removed
        peak = max(peak, at_start)
    recent_removed = sum(removed for removed, _ in run.recent)
    cumulative = recent_removed + removes
    if outcome.members == 0:
        reason = "segments_empty"
        why = "the export's segments now match nobody"
    elif not sum(outcome.accepted.values()):
        reason = "no_usable_identifier"
        why = "no member of the export's segments has a usable identifier"
    elif share > threshold:
        reason = "share_above_threshold"
        why = f"that is more than the export's maximum removal share of {limit}"
    elif emptied_type is not None:
        kind, number, of_type, type_share = emptied_type
        reason = "type_share_above_threshold"
        why = (
            f"{number:,} of them are {kind} identifiers, {_percent(type_share, threshold)} of "
            f"the {of_type:,} {kind} identifiers held, more than the export's maximum removal "
            f"share of {limit}"
        )
    elif threshold < 1 and recent_removed and peak > 0 and cumulative / peak > threshold:
        reason = "recent_removals_above_threshold"
        why = (
            f"with the {recent_removed:,} removal(s) of the export's runs {run.window} "
            f"that makes {cumulative:,}, {_percent(cumulative / peak, threshold)} of the "
            f"{peak:,} identifiers held at most in that time, more than the export's maximum "
            f"removal share of {limit}"
        )
    else:
        return None
    verb = "would hold" if run.dry_run else "holds"
    message = (
        f"Run {run_id} {verb} {removes:,} removal(s), {_percent(share, threshold)} of the "
        f"{held:,} identifiers audiencesync holds in the audience, because {why}; its adds "
        f"were {'planned' if run.dry_run else 'sent'} and the removals wait until an "
        "administrator or the export's contributor approves or dismisses them."
    )
    return Guard(
        held=held,
        held_removes=guarded,
        threshold=threshold,
        reason=reason,
        message=message,
    )


def _diff(
    snapshot: Snapshot,
    kind: IdentifierType,
    current: Path | None,
    work: Path,
    run: RunInput,
    outcome: RunOutcome,
) -> tuple[list[tuple[str, Path]], int]:
    """One type's removals (mirror) and adds, as Parquet files of hashes, and how many
    identifiers of the type were confirmed before the run.

    The current values are hashed here, inside the query (``HASH_SQL``). A connection
    per type, closed before its files are sent: its memory is returned first.
    """
    mine = (
        f"SELECT {HASH_SQL} AS hash FROM read_parquet('{current}')"
        if current is not None
        else "SELECT NULL::VARCHAR AS hash WHERE false"
    )
    held = 0
    excluded = suppression.exclusion_sql(run, kind)
    with duck.connect() as con:
        if excluded is not None:
            suppressed = suppression.suppressed_sql(run, kind)
            if current is not None and suppressed is not None:
                (number,) = con.execute(
                    f"SELECT count(DISTINCT hash) FROM ({mine}) AS mine "
                    f"SEMI JOIN ({suppressed}) AS suppressed USING (hash)"
                ).fetchone() or (0,)
                if number:
                    outcome.suppressed[kind.value] = int(number)
            # Never added; removed where held (below, and by the mirror diff).
            mine = _without(mine, excluded)
        # A --full run folds the journal first: its adds then overlap only the base, and
        # the confirmed set never holds a hash twice, so a plain count(*) is exact.
        snapshot.compact(kind, con, force=run.full)
        confirmed = snapshot.confirmed_sql(kind, con)
        if confirmed is not None:
            (number,) = con.execute(f"SELECT count(*) FROM ({confirmed})").fetchone() or (0,)
            held = int(number)
        if confirmed is None:
            sections = [(ADD, f"SELECT DISTINCT hash FROM ({mine})")]  # nothing to diff
        elif run.full:
            # Each side in parentheses: the confirmed query may start with WITH and
            # holds a UNION ALL, which INTERSECT / EXCEPT would otherwise bind into.
            # Two files: the hashes already confirmed (counted ``resent`` as their
            # batches are acknowledged) and the new ones.
            sections = [
                (RESEND, f"({mine}) INTERSECT (SELECT hash FROM ({confirmed}))"),
                (ADD, f"({mine}) EXCEPT (SELECT hash FROM ({confirmed}))"),
            ]
            if run.mirror:
                removes = f"(SELECT hash FROM ({confirmed})) EXCEPT ({mine})"
                if excluded is not None:
                    removes = _without(removes, excluded)
                sections.insert(0, (REMOVE, removes))
        else:
            # One pass: a full outer join keeps the hashes found on one side only.
            con.execute(
                "CREATE TEMP TABLE difference AS "
                "SELECT mine.hash AS current, confirmed.hash AS confirmed "
                f"FROM ({mine}) AS mine FULL OUTER JOIN ({confirmed}) AS confirmed "
                "ON mine.hash = confirmed.hash "
                "WHERE mine.hash IS NULL OR confirmed.hash IS NULL"
            )
            sections = [
                (ADD, "SELECT DISTINCT current AS hash FROM difference WHERE current IS NOT NULL")
            ]
            if run.mirror:
                removes = (
                    "SELECT DISTINCT confirmed AS hash FROM difference WHERE confirmed IS NOT NULL"
                )
                if excluded is not None:
                    removes = _without(removes, excluded)
                sections.insert(0, (REMOVE, removes))
        if excluded is not None and confirmed is not None:
            # Suppression and withdrawn consent win, in add-only mode too (docs/privacy.md).
            sections.insert(
                0,
                (
                    WITHDRAW,
                    f"SELECT DISTINCT hash FROM ({confirmed}) AS confirmed "
                    f"SEMI JOIN ({excluded}) AS x USING (hash)",
                ),
            )
        files = []
        for action, query in sections:
            path = work / f"{action}-{kind.value}.parquet"
            con.execute(f"COPY ({query}) TO '{path}' (FORMAT parquet, COMPRESSION uncompressed)")
            files.append((action, path))
    return files, held


def _without(query: str, excluded: str) -> str:
    """The hashes of ``query`` that ``excluded`` does not hold."""
    return f"SELECT hash FROM ({query}) AS kept ANTI JOIN ({excluded}) AS x USING (hash)"


def _batches(
    files: Iterator[PlannedFile], outcome: RunOutcome, size: int
) -> Iterator[tuple[str, IdentifierType, pa.Array]]:
    """Each planned file in batches of at most ``size`` hashes, read with bounded memory."""
    for action, kind, path, number in files:
        outcome.batches_total += -(-number // size)
        # Batches span row groups, so each request but the last carries ``size`` hashes.
        for batch in read_batches(path, size):
            yield action, kind, batch.column(0)


def push(
    destination: Destination,
    snapshot: Snapshot,
    run: RunInput,
    files: Iterator[PlannedFile],
    outcome: RunOutcome,
    *,
    concurrency: int,
    report: Reporter,
    cancelled: CancelCheck,
) -> None:
    """Send the planned batches; journal each acknowledged one before counting it."""
    size = destination.max_batch_size
    report(outcome)
    lock = threading.Lock()

    def send(
        action: str, kind: IdentifierType, hashes: pa.Array
    ) -> tuple[BatchResult, str, IdentifierType, pa.Array]:
        if action in REMOVALS:
            result = destination.remove_batch(run.audience_id, kind, hashes)
        else:
            result = destination.add_batch(run.audience_id, kind, hashes)
        snapshot.record(REMOVE if action in REMOVALS else ADD, kind, hashes)
        return result, action, kind, hashes

    in_flight: set[Future[tuple[BatchResult, str, IdentifierType, pa.Array]]] = set()
    source = _batches(files, outcome, size)
    if snapshot.home is None:  # every run's snapshot is opened with its home (Snapshot.of)
        raise RuntimeError("a run's snapshot needs the home folder that holds the erased list")
    erased = suppression.ErasedAtSend(snapshot.home)
    stop = False
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="push") as pool:
        while True:
            while not stop and len(in_flight) < concurrency:
                if cancelled():
                    outcome.cancelled = True
                    stop = True
                    break
                item = next(source, None)
                if item is None:
                    break
                action, kind, hashes = item
                if action not in REMOVALS:
                    # Erased after this run planned: never added (docs/privacy.md).
                    hashes, dropped = erased.drop(kind, hashes)
                    if dropped:
                        planned = (
                            outcome.planned_resends if action == RESEND else outcome.planned_adds
                        )
                        planned[kind.value] -= dropped
                        _add(outcome.suppressed, kind.value, dropped)
                        if not len(hashes):
                            outcome.batches_total -= 1
                            continue
                outcome.phase = "sending"
                in_flight.add(pool.submit(send, action, kind, hashes))
            if not in_flight:
                break
            done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    result, action, kind, hashes = future.result()
                except ReauthenticationRequiredError as error:
                    with lock:
                        outcome.errors.append(error.message)
                        outcome.fatal = True
                    stop = True
                    continue
                except DestinationError as error:
                    with lock:
                        outcome.errors.append(error.message)
                    stop = True
                    continue
                with lock:
                    if action == RESEND:
                        # Already confirmed before the run: a re-send, never a new add.
                        outcome.resent += len(hashes)
                    else:
                        totals = outcome.removed if action in REMOVALS else outcome.added
                        totals[kind.value] = totals.get(kind.value, 0) + len(hashes)
                    outcome.requests += result.requests
                    outcome.bytes_sent += result.bytes_sent
                    outcome.batches_done += 1
                report(outcome)
    outcome.failed = (
        max(0, outcome.to_send - outcome.sent) if (outcome.errors or outcome.cancelled) else 0
    )


def send_and_confirm(
    destination: Destination,
    snapshot: Snapshot,
    run: RunInput,
    planned: list[PlannedFile],
    outcome: RunOutcome,
    *,
    concurrency: int,
    report: Reporter,
    cancelled: CancelCheck,
) -> None:
    """Send files planned outside a diff (an approval's held removals, an erasure's
    removals), then fold the snapshot and count what it holds confirmed."""
    with outcome.timing("sending"):
        push(
            destination, snapshot, run, iter(planned), outcome,
            concurrency=concurrency, report=report, cancelled=cancelled,
        )  # fmt: skip
    with outcome.timing("confirming"):
        snapshot.compact_all()
        outcome.confirmed = snapshot.counts()
        outcome.identifiers_held = sum(outcome.confirmed.values())


def _read_back(destination: Destination, run: RunInput, outcome: RunOutcome) -> None:
    with outcome.timing("reading_back"):
        outcome.phase = "reading back the audience"
        try:
            audience = destination.describe_audience(run.audience_id)
            outcome.audience = {
                "approximate_number_users": audience.approximate_number_users,
                "upload_status": audience.upload_status,
                "targetable_status": audience.targetable_status,
                "status": audience.status,
            }
        except AudiencesyncError as error:
            outcome.errors.append(f"the audience could not be read back: {error.message}")


def _confirmed_after(snapshot: Snapshot, run: RunInput, outcome: RunOutcome) -> dict[str, int]:
    """Identifiers confirmed per type once the run's acknowledged batches are journaled.

    A diff run's adds were not confirmed and its removals were, each hash once, so the
    count is what was held plus added minus removed, without reading the snapshot again.
    A --full run (its adds overlap what was held) and types the plan did not diff are
    counted in the snapshot.
    """
    if run.full:
        return snapshot.held()
    result = {}
    for kind, held in outcome.held_before.items():
        number = held + outcome.added.get(kind, 0) - outcome.removed.get(kind, 0)
        if number:
            result[kind] = number
    others = {kind.value for kind in snapshot.types()} - set(outcome.held_before)
    if others:
        counted = snapshot.held()
        result.update({kind: counted[kind] for kind in others if kind in counted})
    return dict(sorted(result.items()))


def _request_counters(
    destination: Destination, outcome: RunOutcome, before: dict[str, int]
) -> None:
    after = destination.request_counters()
    outcome.retries = after.get("retries", 0) - before.get("retries", 0)
    outcome.throttled = after.get("throttled", 0) - before.get("throttled", 0)


def _empty(
    destination: Destination,
    snapshot: Snapshot,
    run: RunInput,
    outcome: RunOutcome,
    report: Reporter,
    phase: str,
) -> None:
    """Empty the audience the way a clear does: the marker, written first, makes the next
    run finish the emptying if this one is killed before the snapshot is reset."""
    outcome.phase = phase
    report(outcome)
    outcome.emptied_held = sum(snapshot.held().values())
    snapshot.mark_clear_pending()
    destination.clear(run.audience_id)
    snapshot.reset()
    snapshot.clear_done()
    outcome.emptied = True
    outcome.identifiers_held = 0


def _replace_or_hold(
    destination: Destination | None,
    snapshot: Snapshot,
    current: dict[IdentifierType, Path],
    work: Path,
    run: RunInput,
    outcome: RunOutcome,
    report: Reporter,
    run_id: int,
) -> Iterator[PlannedFile]:
    """A replace's files: first planned as a mirror diff, whose removals are exactly the
    held identifiers the replace would lose; if the removal guard holds them, the run
    goes on as that mirror run (adds sent, removals held, ``needs_approval``) and the
    audience is not emptied. Otherwise the audience is emptied and every member is added.
    """
    if outcome.members == 0 or not sum(outcome.accepted.values()):
        why = (
            "the export's segments now match nobody"
            if outcome.members == 0
            else "no member of the export's segments has a usable identifier"
        )
        raise ConflictError(
            f"Run {run_id} did not empty the audience: {why}, so a replace would leave it "
            "empty; fix the data or the segments, or empty it on purpose",
            fix=Fix("clear_audience"),
        )
    as_mirror = replace(run, mirror=True, replace=False, full=False)
    (work / "probe").mkdir(exist_ok=True)
    probe = list(plan(snapshot, current, work / "probe", as_mirror, outcome, run_id=run_id))
    if outcome.guard is not None:
        outcome.guard.message = outcome.guard.message.replace(
            f"Run {run_id} ",
            f"Run {run_id} did not empty the audience: as a replace it ",
            1,
        )
        return iter(probe)
    outcome.planned_adds.clear()
    outcome.planned_removes.clear()
    outcome.held_before.clear()
    outcome.planned_all = False
    if destination is not None and not run.dry_run:
        _empty(destination, snapshot, run, outcome, report, "emptying the audience")
    return plan(snapshot, current, work, run, outcome, run_id=run_id)


def execute(
    ctx: Context,
    run_id: int,
    run: RunInput,
    destination: Destination | None,
    *,
    concurrency: int,
    report: Reporter,
    cancelled: CancelCheck,
) -> RunOutcome:
    """Do one run; every failure ends up as plain words in ``outcome.errors``."""
    outcome = RunOutcome()
    snapshot = Snapshot.of(ctx, run.export_id, run.audience_id)
    work = snapshot.scratch(run_id)
    started = time.perf_counter()
    counters = destination.request_counters() if destination is not None else {}
    try:
        finishing_clear = False
        if destination is not None and snapshot.clear_pending():
            finishing_clear = True
            _empty(destination, snapshot, run, outcome, report, "finishing an interrupted clear")
        # Members first, also for a replace: it must not empty the audience before it
        # knows what it would upload.
        with outcome.timing("members_and_hashing"):
            current = collect_identifiers(ctx, run, work, outcome, report)
            run = suppression.with_exclusions(ctx, run, work)
        files: Iterator[PlannedFile]
        if run.replace and not finishing_clear:
            files = _replace_or_hold(
                destination, snapshot, current, work, run, outcome, report, run_id
            )
        else:
            files = plan(snapshot, current, work, run, outcome, run_id=run_id)
        if run.dry_run or destination is None:
            for _ in files:
                report(outcome)
            outcome.confirmed = _confirmed_after(snapshot, run, outcome)
            outcome.phase = "planned"
            return outcome
        with outcome.timing("sending"):
            push(
                destination, snapshot, run, files, outcome,
                concurrency=concurrency, report=report, cancelled=cancelled,
            )  # fmt: skip
        if not outcome.planned_all and not outcome.cancelled:
            outcome.planning_incomplete = True
            # First: the send error that stopped it stays the run's last (alerts quote it).
            outcome.errors.insert(
                0,
                "planning stopped early, after a send error: the planned figures cover "
                "only the identifier types planned before it, the removal guard was not "
                "evaluated and no removal was sent; run the export again.",
            )
        if outcome.held and outcome.status() == NEEDS_APPROVAL:
            # Kept with the snapshot, so an approval after a restart sends exactly these.
            snapshot.hold(run_id, [(kind, path) for _, kind, path, _ in outcome.held_files])
        with outcome.timing("confirming"):
            snapshot.compact_all()
            outcome.confirmed = _confirmed_after(snapshot, run, outcome)
            outcome.identifiers_held = sum(outcome.confirmed.values())
        if not outcome.fatal:
            report(outcome)
            _read_back(destination, run, outcome)
        outcome.phase = "done"
        return outcome
    except AudiencesyncError as error:
        outcome.errors.append(error.message)
        outcome.fatal = True
        return outcome
    finally:
        if destination is not None:
            _request_counters(destination, outcome, counters)
        shutil.rmtree(work, ignore_errors=True)
        log.info(
            "run %d: %d members, %d sent in %.2fs",
            run_id, outcome.members, outcome.sent, time.perf_counter() - started,
        )  # fmt: skip


def send_held(
    ctx: Context,
    run_id: int,
    held_run_id: int,
    run: RunInput,
    destination: Destination,
    *,
    concurrency: int,
    report: Reporter,
    cancelled: CancelCheck,
) -> RunOutcome:
    """Send the removals run ``held_run_id`` held back (an approval); its outcome.

    Only the held hashes still confirmed are sent, so an approval killed half way and
    approved again sends the rest (each acknowledged batch is journaled as in any run).
    Nothing else is re-planned: what goes out is what was approved, less the hashes of
    profiles that are members again (the data was fixed after the hold), which are
    counted in ``skipped_members``.
    """
    outcome = RunOutcome()
    snapshot = Snapshot.of(ctx, run.export_id, run.audience_id)
    work = snapshot.scratch(run_id)
    counters = destination.request_counters()
    try:
        held = snapshot.held_removals(held_run_id)
        if not held:
            raise ConflictError(
                f"the removals held by run {held_run_id} are no longer kept (a later run or "
                "a clear replaced them): run the export again to plan anew."
            )
        planned: list[PlannedFile] = []
        # Today's members, counted apart: the approval's own figures are its removals.
        members = RunOutcome()
        with outcome.timing("members_and_hashing"):
            current = collect_identifiers(ctx, run, work, members, lambda _: None)
        with outcome.timing("planning"), duck.connect() as con:
            outcome.phase = "planning"
            for kind, path in sorted(held.items()):
                confirmed = snapshot.confirmed_sql(kind, con)
                if confirmed is None:
                    continue
                still = (
                    f"(SELECT hash FROM {snapshot.storage.scan(con, path)}) INTERSECT "
                    f"(SELECT hash FROM ({confirmed}))"
                )
                (approvable,) = con.execute(f"SELECT count(*) FROM ({still})").fetchone() or (0,)
                query = still
                if kind in current:
                    query = (
                        f"({still}) EXCEPT "
                        f"(SELECT {HASH_SQL} AS hash FROM read_parquet('{current[kind]}'))"
                    )
                target = work / f"{REMOVE}-{kind.value}.parquet"
                con.execute(
                    f"COPY ({query}) TO '{target}' (FORMAT parquet, COMPRESSION uncompressed)"
                )
                number = pq.ParquetFile(target).metadata.num_rows
                if int(approvable) > number:
                    outcome.skipped_members[kind.value] = int(approvable) - number
                if number:
                    outcome.planned_removes[kind.value] = number
                    planned.append((REMOVE, kind, target, number))
        send_and_confirm(
            destination, snapshot, run, planned, outcome,
            concurrency=concurrency, report=report, cancelled=cancelled,
        )  # fmt: skip
        if not outcome.fatal:
            _read_back(destination, run, outcome)
        outcome.phase = "done"
        return outcome
    except AudiencesyncError as error:
        outcome.errors.append(error.message)
        outcome.fatal = True
        return outcome
    finally:
        _request_counters(destination, outcome, counters)
        shutil.rmtree(work, ignore_errors=True)
