"""Alerts: which events of which export go to which channel, said how, delivered when.

Administrators add channels (a notification URL in apprise's syntax, kept encrypted);
each export picks channels and events. When an event arises, :func:`emit` records one
delivery per channel (deduplicated by the occurrence: a channel hears of a run's failure,
or of a connection's loss of its grant, once) and sends it with bounded retries. A
delivery says only the export, the run, the status, counts and the plain-words error:
never an identifier, a hash or a token. A channel that fails is recorded on its delivery
and logged in one line; it never fails the run that raised the event.

Runs raise their events after their outcome is recorded (:func:`after_run`); a
connection that needs re-authentication raises it once per transition
(:func:`connection_needs_reauth`).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from audiencesync import notify
from audiencesync.control import audit
from audiencesync.control.alert_models import (
    AlertChannel,
    AlertDelivery,
    ExportAlertChannel,
    ExportAlertSettings,
)
from audiencesync.control.context import Context
from audiencesync.control.models import AuditEntry, utcnow
from audiencesync.control.permissions import Action, Actor, require
from audiencesync.control.sync_models import Connection, Export, Run
from audiencesync.errors import (
    AudiencesyncError,
    ConflictError,
    Fix,
    NotFoundError,
    UserInputError,
    about,
)

log = logging.getLogger(__name__)


class AlertEvent(StrEnum):
    """What an export can be alerted about."""

    RUN_FAILED = "run_failed"
    RUN_PARTIALLY_SUCCEEDED = "run_partially_succeeded"
    NEEDS_APPROVAL = "needs_approval"
    NEEDS_REAUTH = "needs_reauth"
    REJECT_SHARE = "reject_share"
    AUDIENCE_DRIFT = "audience_drift"
    RECOVERED = "recovered"


#: How each event reads in an alert's title.
EVENT_WORDS: dict[AlertEvent, str] = {
    AlertEvent.RUN_FAILED: "run failed",
    AlertEvent.RUN_PARTIALLY_SUCCEEDED: "run partially succeeded",
    AlertEvent.NEEDS_APPROVAL: "run needs approval",
    AlertEvent.NEEDS_REAUTH: "connection needs re-authentication",
    AlertEvent.REJECT_SHARE: "many identifiers rejected",
    AlertEvent.AUDIENCE_DRIFT: "audience may have drifted",
    AlertEvent.RECOVERED: "recovered",
}
ALL_EVENTS: tuple[AlertEvent, ...] = tuple(AlertEvent)
#: The event name of a delivery sent by ``alerts test``.
TEST_EVENT = "test"
DEFAULT_REJECT_SHARE = 0.2

#: A claimed delivery older than this was left by a process that died while sending.
STALE_SENDING = timedelta(hours=2)
PENDING = "pending"
SENDING = "sending"
DELIVERED = "delivered"
FAILED = "failed"

_RUN_STATUS_EVENTS = {
    "failed": AlertEvent.RUN_FAILED,
    "partially_succeeded": AlertEvent.RUN_PARTIALLY_SUCCEEDED,
    "needs_approval": AlertEvent.NEEDS_APPROVAL,
}
#: Statuses a run ends with after it did (or tried) its work; cancelled and interrupted
#: runs say nothing about the export's health and are skipped when looking back.
_FINISHED = ("succeeded", "partially_succeeded", "failed", "needs_approval")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$")

Sleep = Callable[[float], None]
#: How deliveries wait between attempts; tests replace it to run retries instantly.
sleep: Sleep = time.sleep

# Belt and braces over messages that are plain words by construction: anything that
# looks like an email, a hash or a token is taken out of an alert before it is stored.
_EMAIL = re.compile(r"[^\s@<>()\[\],;:\"']+@[^\s@<>()\[\],;:\"']+\.[A-Za-z]{2,}")
_HEX = re.compile(r"\b[0-9A-Fa-f]{32,}\b")
_TOKENISH = re.compile(r"[A-Za-z0-9+/=_\-.]{32,}")
_MAX_SUMMARY = 1000


def scrub(text: str) -> str:
    """``text`` with emails, hashes and token-like strings replaced by ``[redacted]``."""
    text = _EMAIL.sub("[redacted]", text)
    text = _HEX.sub("[redacted]", text)

    def token(match: re.Match[str]) -> str:
        word = match.group(0)
        has_digit = any(c.isdigit() for c in word)
        has_letter = any(c.isalpha() for c in word)
        return "[redacted]" if has_digit and has_letter else word

    return _TOKENISH.sub(token, text)


def parse_events(given: str | Iterable[str] | None) -> tuple[AlertEvent, ...]:
    """Events from ``run_failed,recovered`` (or a list); all of them when none are given.

    Raises UserInputError naming the unknown event and the known ones.
    """
    if given is None:
        return ALL_EVENTS
    items = [given] if isinstance(given, str) else list(given)
    names = [part.strip().lower() for item in items for part in item.split(",") if part.strip()]
    if not names or names == ["all"]:
        return ALL_EVENTS
    chosen: list[AlertEvent] = []
    for name in names:
        try:
            event = AlertEvent(name)
        except ValueError:
            raise UserInputError(
                f"{name!r} is not an alert event: use all, or some of "
                f"{', '.join(e.value for e in ALL_EVENTS)} (comma-separated)."
            ) from None
        if event not in chosen:
            chosen.append(event)
    return tuple(sorted(chosen, key=ALL_EVENTS.index))


# --- channels -------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelView:
    """A channel as shown: its scheme and host, never the rest of its URL."""

    name: str
    scheme: str
    host: str
    created_by: str
    created_at: datetime
    exports: tuple[str, ...]

    @property
    def display(self) -> str:
        return notify.ChannelAddress(self.scheme, self.host).display


def _channel_view(session: Session, row: AlertChannel) -> ChannelView:
    exports = session.scalars(
        select(Export.name)
        .join(ExportAlertChannel, ExportAlertChannel.export_id == Export.id)
        .where(ExportAlertChannel.channel_id == row.id)
        .order_by(Export.name)
    )
    return ChannelView(
        name=row.name,
        scheme=row.scheme,
        host=row.host,
        created_by=row.created_by,
        created_at=row.created_at,
        exports=tuple(exports),
    )


def _channel_row(session: Session, name: str) -> AlertChannel:
    row = session.scalar(select(AlertChannel).where(AlertChannel.name == name))
    if row is None:
        raise NotFoundError(f"there is no alert channel named {name!r}.", fix=Fix("list", "alerts"))
    return row


def add_channel(ctx: Context, actor: Actor, name: str, url: str) -> ChannelView:
    """Save a channel (administrators only); its URL is checked, then stored encrypted.

    Raises UserInputError for a bad name or a URL apprise cannot send to, ConflictError
    when the name is taken.
    """
    require(actor, Action.MANAGE_CONNECTIONS)
    cleaned = name.strip()
    if not _NAME.match(cleaned):
        raise UserInputError(
            f"{name!r} is not a valid channel name: use letters, digits, spaces, '.', '_' or "
            "'-', at most 100 characters.",
            field="name",
        )
    with about("url"):
        address = notify.describe(url)
    with ctx.db.session() as session:
        if session.scalar(select(AlertChannel).where(AlertChannel.name == cleaned)) is not None:
            raise ConflictError(
                f"an alert channel named {cleaned!r} already exists: choose another.",
                field="name",
            )
        row = AlertChannel(
            name=cleaned,
            scheme=address.scheme,
            host=address.host,
            url_ciphertext=ctx.secrets.encrypt(url.strip()),
            created_by=actor.name,
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
        audit.record(
            session, actor, "alert_channel.create", f"alert_channel:{cleaned}",
            after={"scheme": address.scheme, "host": address.host},
        )  # fmt: skip
        return _channel_view(session, row)


def list_channels(ctx: Context, actor: Actor) -> list[ChannelView]:
    """Every channel, with the exports using it (administrators only)."""
    require(actor, Action.MANAGE_CONNECTIONS)
    with ctx.db.session() as session:
        rows = session.scalars(select(AlertChannel).order_by(AlertChannel.name))
        return [_channel_view(session, r) for r in rows]


def channel_names(ctx: Context, actor: Actor) -> list[str]:
    """The channels' names, for those who choose an export's channels."""
    require(actor, Action.EDIT_EXPORTS)
    with ctx.db.session() as session:
        return list(session.scalars(select(AlertChannel.name).order_by(AlertChannel.name)))


def remove_channel(ctx: Context, actor: Actor, name: str) -> list[str]:
    """Remove a channel (its past deliveries stay); the exports that used it."""
    require(actor, Action.MANAGE_CONNECTIONS)
    with ctx.db.session() as session:
        row = _channel_row(session, name)
        used_by = list(_channel_view(session, row).exports)
        for link in session.scalars(
            select(ExportAlertChannel).where(ExportAlertChannel.channel_id == row.id)
        ):
            session.delete(link)
        audit.record(
            session, actor, "alert_channel.remove", f"alert_channel:{row.name}",
            before={"scheme": row.scheme, "host": row.host, "exports": used_by},
        )  # fmt: skip
        session.delete(row)
    return used_by


def test_channel(ctx: Context, actor: Actor, name: str) -> DeliveryView:
    """Send a test alert to a channel now, with retries; the recorded delivery."""
    require(actor, Action.MANAGE_CONNECTIONS)
    with ctx.db.session() as session:
        row = _channel_row(session, name)
        moment = utcnow()
        delivery = AlertDelivery(
            channel_id=row.id, channel_name=row.name, event=TEST_EVENT, export_name="",
            run_id=None, dedupe_key=f"test:{actor.name}:{moment.isoformat()}",
            title="audiencesync: test alert",
            body=f"A test alert from audiencesync, sent by {actor.name} to channel {row.name}.",
            status=PENDING, attempts=0, created_at=moment,
        )  # fmt: skip
        session.add(delivery)
        session.flush()
        delivery_id = delivery.id
    deliver(ctx, [delivery_id])
    return get_delivery(ctx, delivery_id)


# --- what each export asks for --------------------------------------------------------


@dataclass(frozen=True)
class ExportAlerts:
    """An export's alert choices: its channels, its events, its reject-share threshold."""

    channels: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    reject_share_threshold: float = DEFAULT_REJECT_SHARE


def export_alerts(session: Session, export_id: int) -> ExportAlerts:
    """The alert choices of an export (no channels: nothing is sent)."""
    channels = tuple(
        session.scalars(
            select(AlertChannel.name)
            .join(ExportAlertChannel, ExportAlertChannel.channel_id == AlertChannel.id)
            .where(ExportAlertChannel.export_id == export_id)
            .order_by(AlertChannel.name)
        )
    )
    settings = session.get(ExportAlertSettings, export_id)
    if settings is None:
        return ExportAlerts(channels=channels, events=tuple(e.value for e in ALL_EVENTS))
    return ExportAlerts(
        channels=channels,
        events=tuple(settings.events),
        reject_share_threshold=settings.reject_share_threshold,
    )


def check_alert_choices(
    session: Session,
    channels: Sequence[str] | None,
    events: str | Iterable[str] | None,
    reject_share_threshold: float | None = None,
) -> None:
    """Refuse unknown channels (NotFoundError), events or a bad threshold (UserInputError)."""
    for name in channels or ():
        if name.strip():
            _channel_row(session, name.strip())
    if events is not None:
        parse_events(events)
    _check_threshold(reject_share_threshold)


def _check_threshold(threshold: float | None) -> None:
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise UserInputError(
            "the reject share that raises an alert is a fraction between 0 and 1, e.g. 0.2."
        )


def set_export_alerts(
    session: Session,
    export_id: int,
    *,
    channels: Sequence[str] | None = None,
    events: str | Iterable[str] | None = None,
    reject_share_threshold: float | None = None,
) -> ExportAlerts:
    """Change an export's alert choices in ``session``; None keeps a choice as it is.

    Raises NotFoundError for an unknown channel, UserInputError for an unknown event or
    a threshold outside 0..1.
    """
    _check_threshold(reject_share_threshold)
    if channels is not None:
        wanted = [_channel_row(session, n.strip()) for n in dict.fromkeys(channels) if n.strip()]
        for link in session.scalars(
            select(ExportAlertChannel).where(ExportAlertChannel.export_id == export_id)
        ):
            session.delete(link)
        session.flush()
        for channel in wanted:
            session.add(ExportAlertChannel(export_id=export_id, channel_id=channel.id))
    if events is not None or reject_share_threshold is not None:
        settings = session.get(ExportAlertSettings, export_id)
        if settings is None:
            settings = ExportAlertSettings(
                export_id=export_id,
                events=[e.value for e in ALL_EVENTS],
                reject_share_threshold=DEFAULT_REJECT_SHARE,
            )
            session.add(settings)
        if events is not None:
            settings.events = [e.value for e in parse_events(events)]
        if reject_share_threshold is not None:
            settings.reject_share_threshold = reject_share_threshold
    session.flush()
    return export_alerts(session, export_id)


# --- deliveries -----------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryView:
    id: int
    channel: str
    event: str
    export: str
    run_id: int | None
    title: str
    body: str
    status: str
    attempts: int
    error: str | None
    created_at: datetime
    finished_at: datetime | None


def _delivery_view(row: AlertDelivery) -> DeliveryView:
    return DeliveryView(
        id=row.id,
        channel=row.channel_name,
        event=row.event,
        export=row.export_name,
        run_id=row.run_id,
        title=row.title,
        body=row.body,
        status=row.status,
        attempts=row.attempts,
        error=row.error,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


def get_delivery(ctx: Context, delivery_id: int) -> DeliveryView:
    with ctx.db.session() as session:
        row = session.get(AlertDelivery, delivery_id)
        if row is None:
            raise NotFoundError(f"there is no alert delivery {delivery_id}.")
        return _delivery_view(row)


def list_deliveries(
    ctx: Context,
    actor: Actor,
    *,
    channel: str | None = None,
    export: str | None = None,
    limit: int = 50,
) -> list[DeliveryView]:
    """The newest deliveries first (administrators only)."""
    require(actor, Action.MANAGE_CONNECTIONS)
    with ctx.db.session() as session:
        query = select(AlertDelivery).order_by(AlertDelivery.id.desc()).limit(max(1, limit))
        if channel is not None:
            query = query.where(AlertDelivery.channel_name == channel)
        if export is not None:
            query = query.where(AlertDelivery.export_name == export)
        return [_delivery_view(r) for r in session.scalars(query)]


def compose(
    event: AlertEvent,
    export_name: str,
    summary: str,
    figures: Mapping[str, Any] | None = None,
    *,
    run_id: int | None = None,
) -> tuple[str, str]:
    """An alert's title and body: the export, the run, the summary and the figures."""
    title = f"audiencesync: {export_name}: {EVENT_WORDS[event]}"
    lines = [scrub(summary.strip())[:_MAX_SUMMARY], "", f"Export: {export_name}"]
    if run_id is not None:
        lines.append(f"Run: {run_id}")
    for label, value in (figures or {}).items():
        shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
        lines.append(f"{label}: {scrub(str(shown))}")
    return scrub(title)[:300], "\n".join(lines)


def _record(
    session: Session,
    channels: Iterable[AlertChannel],
    *,
    event: str,
    export_name: str,
    run_id: int | None,
    dedupe_key: str,
    title: str,
    body: str,
) -> list[int]:
    """Pending deliveries for the channels that have not had this occurrence yet."""
    created: list[int] = []
    for channel in channels:
        delivery = AlertDelivery(
            channel_id=channel.id, channel_name=channel.name, event=event,
            export_name=export_name, run_id=run_id, dedupe_key=dedupe_key[:200],
            title=title, body=body, status=PENDING, attempts=0, created_at=utcnow(),
        )  # fmt: skip
        try:
            with session.begin_nested():
                session.add(delivery)
        except IntegrityError:
            continue  # this channel already had this occurrence (another process saw it)
        created.append(delivery.id)
    return created


def _subscribed_channels(session: Session, export_id: int, event: AlertEvent) -> list[AlertChannel]:
    settings = session.get(ExportAlertSettings, export_id)
    if settings is not None and event.value not in settings.events:
        return []
    return list(
        session.scalars(
            select(AlertChannel)
            .join(ExportAlertChannel, ExportAlertChannel.channel_id == AlertChannel.id)
            .where(ExportAlertChannel.export_id == export_id)
            .order_by(AlertChannel.id)
        )
    )


def emit(
    ctx: Context,
    export_id: int,
    event: AlertEvent,
    summary: str,
    figures: Mapping[str, Any] | None = None,
    *,
    run_id: int | None = None,
    dedupe_key: str | None = None,
    defer: bool = False,
) -> list[int]:
    """Alert the export's channels that chose ``event``; the deliveries' ids.

    ``summary`` is one plain sentence; ``figures`` are labelled counts ("Members": 1000).
    Neither may hold identifiers, hashes or tokens (what looks like one is redacted
    anyway). ``dedupe_key`` names the occurrence (default: the run and event, or the
    event and the time): a channel gets one delivery per key. Sent now with retries,
    or left pending for :func:`deliver_pending` when ``defer``. Never raises: a failure
    is recorded on its delivery and logged in one line.
    """
    try:
        with ctx.db.session() as session:
            export = session.get(Export, export_id)
            if export is None:
                return []
            channels = _subscribed_channels(session, export_id, event)
            if not channels:
                return []
            key = dedupe_key or (
                f"run:{run_id}:{event.value}" if run_id is not None
                else f"export:{export_id}:{event.value}:{utcnow().isoformat()}"
            )  # fmt: skip
            title, body = compose(event, export.name, summary, figures, run_id=run_id)
            created = _record(
                session, channels, event=event.value, export_name=export.name,
                run_id=run_id, dedupe_key=key, title=title, body=body,
            )  # fmt: skip
    except Exception as error:  # noqa: BLE001 - alerts never break the caller
        log.warning("alert %s of export %d not recorded: %s", event.value, export_id, error)
        return []
    if not defer:
        deliver(ctx, created)
    return created


def connection_needs_reauth(ctx: Context, connection_id: int, *, defer: bool = False) -> list[int]:
    """Alert, once per channel, that a connection's grant was refused; the deliveries.

    Every export on the connection that chose ``needs_reauth`` contributes its channels;
    a channel shared by several exports gets one alert naming them all. The occurrence
    is the connection's last authentication: a new sign-in makes a later loss news again.
    """
    try:
        with ctx.db.session() as session:
            connection = session.get(Connection, connection_id)
            if connection is None:
                return []
            exports = session.scalars(
                select(Export).where(Export.connection_id == connection_id).order_by(Export.name)
            ).all()
            channels: dict[int, AlertChannel] = {}
            names: list[str] = []
            for export in exports:
                chosen = _subscribed_channels(session, export.id, AlertEvent.NEEDS_REAUTH)
                if chosen:
                    names.append(export.name)
                for channel in chosen:
                    channels.setdefault(channel.id, channel)
            if not channels:
                return []
            summary = (
                f"Snapchat refused the sign-in of connection {connection.name!r}: its exports "
                "stop until an administrator re-authenticates it (Admin › Connections › "
                "Re-authenticate with Snapchat)."
            )
            title, body = compose(
                AlertEvent.NEEDS_REAUTH, ", ".join(names), summary,
                {"Connection": connection.name, "Exports": ", ".join(names)},
            )  # fmt: skip
            key = (
                f"connection:{connection_id}:needs_reauth:{connection.authenticated_at.isoformat()}"
            )
            created = _record(
                session, channels.values(), event=AlertEvent.NEEDS_REAUTH.value,
                export_name=names[0] if len(names) == 1 else "", run_id=None,
                dedupe_key=key, title=title, body=body,
            )  # fmt: skip
    except Exception as error:  # noqa: BLE001 - alerts never break the caller
        log.warning("needs_reauth alert of connection %d not recorded: %s", connection_id, error)
        return []
    if not defer:
        deliver(ctx, created)
    return created


def _attempt_waits(ctx: Context) -> list[float]:
    base = ctx.settings.alert_retry_seconds
    return [base * 2**i for i in range(ctx.settings.alert_attempts - 1)]


def deliver(ctx: Context, delivery_ids: Iterable[int]) -> None:
    """Send pending deliveries (each claimed first, so two processes never both send)."""
    for delivery_id in delivery_ids:
        try:
            _deliver_one(ctx, delivery_id)
        except Exception as error:  # noqa: BLE001 - one broken delivery must not stop the rest
            log.warning(
                "alert delivery %d could not be sent: %s", delivery_id, type(error).__name__
            )


def deliver_pending(ctx: Context) -> int:
    """Send every delivery still pending (deferred, or left by a process that died).

    A delivery claimed more than :data:`STALE_SENDING` ago by a process that never
    finished it is taken up again (far longer than any bounded retry schedule lasts).
    """
    with ctx.db.session() as session:
        session.execute(
            update(AlertDelivery)
            .where(
                AlertDelivery.status == SENDING,
                AlertDelivery.created_at < utcnow() - STALE_SENDING,
            )
            .values(status=PENDING)
        )
    with ctx.db.session() as session:
        ids = list(
            session.scalars(
                select(AlertDelivery.id)
                .where(AlertDelivery.status == PENDING)
                .order_by(AlertDelivery.id)
            )
        )
    deliver(ctx, ids)
    return len(ids)


def _deliver_one(ctx: Context, delivery_id: int) -> None:
    with ctx.db.session() as session:
        claimed = session.execute(
            update(AlertDelivery)
            .where(AlertDelivery.id == delivery_id, AlertDelivery.status == PENDING)
            .values(status=SENDING)
        )
        if int(getattr(claimed, "rowcount", 0)) != 1:
            return
        row = session.get(AlertDelivery, delivery_id)
        assert row is not None
        channel = session.get(AlertChannel, row.channel_id) if row.channel_id else None
        title, body, name = row.title, row.body, row.channel_name
        ciphertext = channel.url_ciphertext if channel is not None else None
    attempts = 0
    error: str | None = None
    url: str | None = None
    if ciphertext is None:
        error = "the channel was removed before the alert was sent."
    else:
        try:
            url = ctx.secrets.decrypt(ciphertext)
        except AudiencesyncError as failure:  # a changed secret key: said on the delivery
            error = failure.message
    if url is not None:
        waits = _attempt_waits(ctx)
        while True:
            attempts += 1
            try:
                notify.send(url, title, body, timeout_seconds=ctx.settings.alert_timeout_seconds)
                error = None
                break
            except notify.DeliveryError as failure:
                error = failure.message
            if attempts > len(waits):
                break
            sleep(waits[attempts - 1])
    with ctx.db.session() as session:
        session.execute(
            update(AlertDelivery)
            .where(AlertDelivery.id == delivery_id)
            .values(
                status=FAILED if error else DELIVERED,
                attempts=attempts,
                error=error,
                finished_at=utcnow(),
            )
        )
    if error:
        log.warning(
            "alert %d to channel %s failed after %d attempt(s): %s",
            delivery_id,
            name,
            attempts,
            error,
        )


# --- events of runs -------------------------------------------------------------------


def reject_share(counts: Mapping[str, Any]) -> tuple[int, int]:
    """(rejected, values present) over every identifier type of a run's counts.

    An empty value is not a rejected identifier: it is left out of both figures.
    """
    rejected = 0
    for reasons in (counts.get("rejected") or {}).values():
        rejected += sum(int(n) for reason, n in reasons.items() if reason != "empty")
    present = counts.get("values_present")
    if isinstance(present, Mapping):  # counts version 2: values present per type
        return rejected, sum(int(n) for n in present.values())
    accepted = sum(int(n) for n in (counts.get("identifiers") or {}).values())
    return rejected, accepted + rejected


def _total(part: Any) -> int:
    if isinstance(part, Mapping):
        return sum(int(v) for v in part.values())
    return int(part or 0)


def _run_figures(run: Run) -> dict[str, Any]:
    counts = run.counts or {}
    figures: dict[str, Any] = {"Status": run.status}
    for label, key in (("Members", "members"), ("Added", "added"), ("Removed", "removed")):
        if key in counts:
            figures[label] = _total(counts[key])
    rejected, values = reject_share(counts)
    if values:
        figures["Rejected"] = f"{rejected:,} of {values:,} values"
    return figures


def _previous_finished(session: Session, run: Run) -> Run | None:
    """The export's latest finished run before ``run`` that says how it went.

    ``needs_approval`` runs are skipped too: they did their work and held removals, so
    they neither end nor start trouble.
    """
    return session.scalar(
        select(Run)
        .where(
            Run.export_id == run.export_id,
            Run.id < run.id,
            Run.dry_run.is_(False),
            Run.status.in_(_FINISHED),
            Run.status != "needs_approval",
        )
        .order_by(Run.id.desc())
        .limit(1)
    )


#: Outcomes a later succeeded run recovers from (besides a connection re-authenticated).
_TROUBLE = {"failed": "failed", "partially_succeeded": "only partly succeeded"}


def _trouble_before(session: Session, run: Run) -> str | None:
    """What a succeeded ``run`` recovers from, in words; None when all was well before.

    The export's previous finished run failed or partly succeeded, or the export's
    connection needed re-authentication since that run ended (its runs were refused
    before they started). The next succeeded run finds a succeeded one before it, so
    "recovered" is sent once.
    """
    previous = _previous_finished(session, run)
    if previous is None:
        return None
    if previous.status in _TROUBLE:
        return f"run {previous.id} {_TROUBLE[previous.status]}"
    export = session.get(Export, run.export_id)
    connection = (
        session.get(Connection, export.connection_id)
        if export is not None and export.connection_id is not None
        else None
    )
    if connection is None or previous.finished_at is None:
        return None
    since = previous.finished_at
    before = run.started_at or run.finished_at or utcnow()
    reauth = session.scalar(
        select(AuditEntry.id)
        .where(
            AuditEntry.action == "connection.needs_reauth",
            AuditEntry.target == f"connection:{connection.name}",
            AuditEntry.at > since,
            AuditEntry.at <= before,
        )
        .limit(1)
    )
    if reauth is None:
        return None
    return f"connection {connection.name} needed re-authentication"


def _rejects_were_above(session: Session, run: Run, threshold: float) -> bool:
    """Whether the export's previous run that read identifier values rejected more than
    ``threshold`` of them (then ``reject_share`` was already raised for this stretch)."""
    rows = session.scalars(
        select(Run)
        .where(
            Run.export_id == run.export_id,
            Run.id < run.id,
            Run.dry_run.is_(False),
            Run.status.in_(_FINISHED),
        )
        .order_by(Run.id.desc())
        .limit(50)
    )
    for previous in rows:
        rejected, values = reject_share(previous.counts or {})
        if values:
            return rejected / values > threshold
    return False


def after_run(ctx: Context, run_id: int) -> None:
    """Raise the events of a run whose outcome is recorded, then send what is pending.

    Failed, partially succeeded and needs-approval runs alert as such; a run that
    rejected more than the export's share of its values alerts ``reject_share``; a
    succeeded run after a failed one alerts ``recovered``. Dry runs alert nothing.
    Never raises.
    """
    try:
        with ctx.db.session() as session:
            run = session.get(Run, run_id)
            if run is None or run.dry_run:
                return
            events = _run_events(session, run)
            export_id = run.export_id
        for event, summary, figures in events:
            emit(ctx, export_id, event, summary, figures, run_id=run_id, defer=True)
        deliver_pending(ctx)
    except Exception as error:  # noqa: BLE001 - alerts never break a run
        log.warning("alerts of run %d not raised: %s", run_id, type(error).__name__)


def _run_events(session: Session, run: Run) -> list[tuple[AlertEvent, str, dict[str, Any]]]:
    export = session.get(Export, run.export_id)
    name = export.name if export is not None else ""
    figures = _run_figures(run)
    last_error = (run.errors or [""])[-1]
    events: list[tuple[AlertEvent, str, dict[str, Any]]] = []
    status_event = _RUN_STATUS_EVENTS.get(run.status)
    if status_event is AlertEvent.RUN_FAILED:
        events.append(
            (status_event, f"Run {run.id} of export {name} failed: {last_error}", figures)
        )
    elif status_event is AlertEvent.RUN_PARTIALLY_SUCCEEDED:
        events.append(
            (
                status_event,
                f"Run {run.id} of export {name} partially succeeded: {last_error}",
                figures,
            )
        )
    elif status_event is AlertEvent.NEEDS_APPROVAL:
        # The guard's own sentence: how many removals it holds and why.
        guard = (run.counts or {}).get("guard") or {}
        reason = (
            str(guard.get("message") or "")
            or last_error
            or ("it holds removals until someone approves them.")
        )
        events.append(
            (status_event, f"Run {run.id} of export {name} needs approval: {reason} "
             "Approve or dismiss it on the run's page.", figures)
        )  # fmt: skip
    elif run.status == "succeeded":
        trouble = _trouble_before(session, run)
        if trouble is not None:
            events.append(
                (AlertEvent.RECOVERED,
                 f"Export {name} recovered: run {run.id} succeeded after {trouble}.",
                 figures)
            )  # fmt: skip
    rejected, values = reject_share(run.counts or {})
    settings = session.get(ExportAlertSettings, run.export_id)
    threshold = settings.reject_share_threshold if settings else DEFAULT_REJECT_SHARE
    # Once per change: only when the share crosses above the threshold (the export's
    # previous run that read values was at or under it, or there was none).
    if (
        values
        and rejected / values > threshold
        and not _rejects_were_above(session, run, threshold)
    ):
        events.append(
            (AlertEvent.REJECT_SHARE,
             f"Run {run.id} of export {name} rejected {rejected / values:.1%} of its identifier "
             f"values ({rejected:,} of {values:,}), above the {threshold:.0%} threshold: check "
             "the mapped fields and the source data. No new alert while it stays above.",
             figures)
        )  # fmt: skip
    return events
