"""Export definitions: which segments go to which audience, through which connection.

Seed steps (Data > Exports > Add destination): a connection the user may use, the
Snapchat audience id (or have one created), data matching (email, and optionally phone and
mobile ad id fields), segments, mode. Saving checks everything it can against Snapchat and
the data, and does not run the export.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa
import pyarrow.compute as pc
from croniter import croniter
from sqlalchemy import select
from sqlalchemy.orm import Session

from audiencesync.control import audit
from audiencesync.control.context import Context
from audiencesync.control.models import Dataset, Role, Segment, utcnow
from audiencesync.control.permissions import Action, Actor, require
from audiencesync.control.sync_models import (
    ACTIVE_STATUSES,
    Connection,
    Export,
    ExportSegment,
    Run,
)
from audiencesync.destinations.base import AudienceInfo
from audiencesync.errors import (
    ActiveRunError,
    ConflictError,
    DestinationNotFoundError,
    DestinationPermissionError,
    Fix,
    NotFoundError,
    PermissionDeniedError,
    UserInputError,
)
from audiencesync.identifiers import RejectReason, check_default_country, hash_batch
from audiencesync.profiles.store import closest
from audiencesync.segments.membership import stream_members
from audiencesync.segments.source import open_source
from audiencesync.storage import Storage
from audiencesync.sync import suppression
from audiencesync.sync.alerts import (
    ExportAlerts,
    check_alert_choices,
    export_alerts,
    set_export_alerts,
)
from audiencesync.sync.audience import AudienceSummary, audience_moved
from audiencesync.sync.audience import summary as audience_summary
from audiencesync.sync.connections import may_use, visible
from audiencesync.sync.destinations import NEEDS_REAUTH, open_destination
from audiencesync.sync.engine import DEFAULT_MAX_REMOVAL_SHARE, identifier_values
from audiencesync.sync.schedule import NO_SENTENCE, Sentence, export_schedule_sentence
from audiencesync.sync.schedule import current as current_schedule
from audiencesync.types import IdentifierType

log = logging.getLogger(__name__)

MODES = ("mirror", "add-only")
FIRST_PARTY = "FIRST_PARTY"
SAMPLE_ROWS = 1000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$")
#: The longest audience id taken (the column holding it is 64 characters).
MAX_AUDIENCE_ID_DIGITS = 64


@dataclass(frozen=True)
class ExportSpec:
    """What a user gives to add or edit an export (CLI flags, API body, UI form)."""

    name: str
    connection: str
    segments: tuple[str, ...]
    email_field: str | None = None
    phone_field: str | None = None
    maid_field: str | None = None
    default_country: str | None = None
    audience_id: str | None = None
    create_audience: bool = False
    audience_name: str | None = None
    audience_description: str | None = None
    retention_days: int = 9999
    ad_account_id: str | None = None
    mode: str = "mirror"
    schedule: str = "system"
    timezone: str = "UTC"
    enabled: bool = True
    #: a mirror run removing more than this share of the held identifiers waits for
    #: approval (always when its segments became empty).
    max_removal_share: float = DEFAULT_MAX_REMOVAL_SHARE
    #: alert channels and events (see sync/alerts.py); None keeps what is saved.
    alert_channels: tuple[str, ...] | None = None
    alert_events: tuple[str, ...] | None = None
    alert_reject_share: float | None = None
    #: a field holding each profile's consent; only profiles holding consent are sent
    #: (docs/privacy.md). ``consent_values``: the values meaning consent (none: the field
    #: is a boolean and true means consent).
    consent_field: str | None = None
    consent_values: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExportView:
    name: str
    connection: str | None
    connection_status: str | None
    audience_id: str
    audience_name: str
    ad_account_id: str
    dataset: str
    segments: tuple[str, ...]
    email_field: str | None
    phone_field: str | None
    maid_field: str | None
    default_country: str | None
    mode: str
    enabled: bool
    schedule: str
    timezone: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    validation: dict[str, Any] = field(default_factory=dict)
    last_run_status: str | None = None
    last_run_at: datetime | None = None
    next_run_at: datetime | None = None
    #: when it runs next, in words ("off: the system refresh is off", "daily at ...").
    schedule_sentence: Sentence = NO_SENTENCE
    #: the latest audience reading, identifiers held now, drift (``sync.audience``).
    audience: AudienceSummary | None = None
    max_removal_share: float = DEFAULT_MAX_REMOVAL_SHARE
    alerts: ExportAlerts = field(default_factory=ExportAlerts)
    consent_field: str | None = None
    consent_values: tuple[str, ...] = ()

    @property
    def schedule_words(self) -> str:
        """``schedule_sentence`` with its next time in UTC (the API's and the CLI's)."""
        return str(self.schedule_sentence)

    @property
    def state(self) -> str:
        """A plain word for the list: active, disabled, detached, needs re-authentication."""
        if self.connection is None:
            return "detached: give it a connection"
        if self.connection_status == NEEDS_REAUTH:
            return "connection needs re-authentication"
        return "enabled" if self.enabled else "disabled"


def identifier_fields(spec: ExportSpec | ExportView | Export) -> dict[IdentifierType, str]:
    """The mapped identifier fields, by type."""
    mapped = {
        IdentifierType.EMAIL: spec.email_field,
        IdentifierType.PHONE: spec.phone_field,
        IdentifierType.MAID: spec.maid_field,
    }
    return {kind: name for kind, name in mapped.items() if name}


def next_run_at(schedule: str, timezone: str, after: datetime) -> datetime | None:
    """When an export's own cron schedule fires next, in UTC (None for system or manual)."""
    if schedule in ("system", "manual"):
        return None
    local = after.astimezone(ZoneInfo(timezone))
    fired: datetime = croniter(schedule, local).get_next(datetime)
    return fired.astimezone(UTC)


def _is_audience_id(text: str) -> bool:
    # str.isdigit() alone took "²³" (Unicode digits): the snapshot then refused it (a 502).
    return text.isascii() and text.isdigit() and len(text) <= MAX_AUDIENCE_ID_DIGITS


def _check_spec(spec: ExportSpec) -> ExportSpec:
    # An API PATCH may send null for a field every export has (it answered 500).
    nulls = [f.name for f in fields(ExportSpec)
             if "None" not in str(f.type) and getattr(spec, f.name) is None]  # fmt: skip
    if nulls:
        raise UserInputError(
            f"{', '.join(repr(n) for n in nulls)} cannot be null: leave a field out to keep "
            "its saved value."
        )
    name = spec.name.strip()
    if not _NAME.match(name):
        raise UserInputError(
            f"{spec.name!r} is not a valid export name: use letters, digits, spaces, '.', '_' "
            "or '-', at most 100 characters.",
            field="name",
        )
    if spec.mode not in MODES:
        raise UserInputError(f"unknown mode {spec.mode!r}: use mirror or add-only.", field="mode")
    if not spec.segments:
        raise UserInputError(
            "an export needs at least one segment to send: choose one.", field="segments"
        )
    if not identifier_fields(spec):
        raise UserInputError(
            "an export needs an identifier field to match people on: map the email field, "
            "or a phone or mobile ad id field.",
            field="email_field",
        )
    if spec.create_audience == bool(spec.audience_id):
        raise UserInputError(
            "choose the Snapchat audience the export fills, or ask for a new one: one of the two.",
            field="audience_id",
        )
    if spec.audience_id is not None and not _is_audience_id(spec.audience_id.strip()):
        shown = spec.audience_id if len(spec.audience_id) <= 40 else spec.audience_id[:37] + "..."
        raise UserInputError(
            f"{shown!r} is not a Snapchat audience id: it is the number (at most "
            f"{MAX_AUDIENCE_ID_DIGITS} digits 0-9) in the audience's URL in Snapchat Audience "
            "Manager.",
            field="audience_id",
        )
    if not 1 <= spec.retention_days <= 9999:
        raise UserInputError(
            "the retention must be between 1 and 9999 days (9999 = lifetime).",
            field="retention_days",
        )
    # A country phones knows, not any two letters: XX would reject every phone at run.
    country = None if spec.default_country is None else check_default_country(spec.default_country)
    try:
        ZoneInfo(spec.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserInputError(
            f"unknown time zone {spec.timezone!r}: use a name like UTC or Europe/Paris.",
            field="timezone",
        ) from None
    share = spec.max_removal_share
    if isinstance(share, bool) or not isinstance(share, float | int) or not 0 <= share <= 1:
        raise UserInputError(
            f"{share!r} is not a maximum removal share: give a number from 0 to 1, for "
            "example 0.2 (a mirror run removing more than 20% of the audience waits for "
            "approval).",
            field="max_removal_share",
        )
    if spec.schedule not in ("system", "manual") and not croniter.is_valid(spec.schedule):
        raise UserInputError(
            f"{spec.schedule!r} is not a schedule: use system (follow the refresh schedule), "
            "manual, or a cron expression such as '0 6 * * *'.",
            field="schedule",
        )
    consent_values = tuple(dict.fromkeys(v.strip() for v in spec.consent_values or () if v.strip()))
    if consent_values and not spec.consent_field:
        raise UserInputError(
            "values that mean consent need a consent field: name the column that holds them.",
            field="consent_field",
        )
    return replace(
        spec,
        name=name,
        consent_field=(spec.consent_field or "").strip() or None,
        consent_values=consent_values,
        audience_id=spec.audience_id.strip() if spec.audience_id else None,
        default_country=country,
        max_removal_share=float(share),
    )


def _segments(session: Session, names: tuple[str, ...]) -> tuple[list[Segment], Dataset]:
    rows = []
    for name in dict.fromkeys(names):
        row = session.scalar(select(Segment).where(Segment.name == name))
        if row is None:
            raise NotFoundError(
                f"there is no segment named {name!r}.",
                field="segments",
                fix=Fix("list", "segments"),
            )
        rows.append(row)
    datasets = {r.dataset_id for r in rows}
    if len(datasets) > 1:
        raise UserInputError(
            "the segments of one export must be over the same profile dataset: "
            "make one export per dataset.",
            field="segments",
        )
    dataset = session.get(Dataset, datasets.pop())
    assert dataset is not None  # a segment's dataset cannot be removed (RESTRICT)
    return rows, dataset


def _check_fields(ctx: Context, spec: ExportSpec, dataset: Dataset) -> dict[str, Any]:
    """Check mapped fields exist; sample values and report the share that would be rejected."""
    columns = [c["name"] for c in dataset.columns]
    mapped = identifier_fields(spec)
    if spec.consent_field is not None:
        types = {c["name"]: str(c["type"]).upper() for c in dataset.columns}
        if spec.consent_field not in columns:
            raise UserInputError(
                f"the consent field {spec.consent_field!r} is not a column of dataset "
                f"{dataset.name!r}: {closest(spec.consent_field, columns)}.",
                field="consent_field",
            )
        if not spec.consent_values and types[spec.consent_field] != "BOOLEAN":
            raise UserInputError(
                f"the consent field {spec.consent_field!r} is not a true/false column "
                f"({types[spec.consent_field].lower()}): give the values that mean consent, "
                "for example opted_in.",
                field="consent_values",
            )
    for kind, name in mapped.items():
        if name not in columns:
            raise UserInputError(
                f"the {kind.value} field {name!r} is not a column of dataset "
                f"{dataset.name!r}: {closest(name, columns)}.",
                field=f"{kind.value}_field",
            )
    report: dict[str, Any] = {
        "sampled_rows": 0,
        "present": {},
        "empty": {},
        "invalid": {},
        "empty_share": {},
        "invalid_share": {},
        "invalid_reasons": {},
    }
    with open_source(ctx, dataset.name) as source:
        sample = source.table.select(*dict.fromkeys(mapped.values())).limit(SAMPLE_ROWS)
        table = sample.to_pyarrow()
    rows = table.num_rows
    report["sampled_rows"] = rows
    for kind, name in mapped.items():
        # A list field (a unified profile's every email) is checked value by value.
        values, parents = identifier_values(table.column(name))
        hashed = hash_batch(kind, values.cast("string"), default_country=spec.default_country)
        # Empty (missing or blank) and invalid are apart: an empty field is no identifier,
        # not a wrong one; the invalid share is of the values present.
        empty = int(hashed.rejected.get(RejectReason.EMPTY, 0))
        present = (rows if parents is None else len(values)) - empty
        if parents is not None:  # rows whose list holds no value at all
            holding = pc.fill_null(pc.not_equal(hashed.reasons, RejectReason.EMPTY.value), True)
            empty = rows - len(pc.unique(pc.filter(parents, holding)))
        reasons = {str(r): n for r, n in hashed.rejected.items() if r != RejectReason.EMPTY}
        invalid = sum(reasons.values())
        share = invalid / present if present else 0.0
        report["present"][kind.value] = present
        report["empty"][kind.value] = empty
        report["invalid"][kind.value] = invalid
        report["empty_share"][kind.value] = round(empty / rows, 4) if rows else 0.0
        report["invalid_share"][kind.value] = round(share, 4)
        report["invalid_reasons"][kind.value] = reasons
        if present and share > 0.5:
            raise UserInputError(
                f"{share:.0%} of the sampled values of field {name!r} are not valid "
                f"{kind.value} identifiers: check that the {kind.value} field is mapped to the "
                "right column"
                + (
                    " (or give the default country of phones without one)."
                    if kind is IdentifierType.PHONE
                    else "."
                ),
                field=f"{kind.value}_field",
            )
    if spec.consent_field is not None:
        report["consent"] = _consent_sample(ctx, spec, spec.consent_field)
    return report


#: identifier types in words ("maid" is jargon).
KIND_WORDS = {"email": "email", "phone": "phone", "maid": "mobile ad id"}


def _consent_sample(ctx: Context, spec: ExportSpec, consent_field: str) -> dict[str, int]:
    """How many of the first ``SAMPLE_ROWS`` segment members hold consent: a consent
    mistake removes people at once (privacy removals skip the guard, docs/privacy.md), so
    the share is shown when the field is saved."""
    members = holding = 0
    with stream_members(ctx, spec.segments, [consent_field], batch_rows=SAMPLE_ROWS) as stream:
        for batch in stream:
            mask = suppression.consent_mask(batch.column(consent_field), spec.consent_values)
            members += batch.num_rows
            holding += int(pc.sum(pc.cast(mask, pa.int64())).as_py() or 0)
            if members >= SAMPLE_ROWS:
                break
    return {"sampled_members": members, "holding": holding}


def validation_notes(validation: dict[str, Any]) -> list[str]:
    """The save-time field check in sentences (CLI and UI): empty and invalid apart."""
    rows = int(validation.get("sampled_rows", 0))
    notes = []
    for kind, present in validation.get("present", {}).items():
        empty = int(validation.get("empty", {}).get(kind, 0))
        invalid = int(validation.get("invalid", {}).get(kind, 0))
        words = KIND_WORDS.get(kind, kind)
        notes.append(
            f"{words}: {empty:,} of {rows:,} sampled rows empty "
            f"({validation.get('empty_share', {}).get(kind, 0.0):.1%}); {invalid:,} of the "
            f"{int(present):,} values present invalid "
            f"({validation.get('invalid_share', {}).get(kind, 0.0):.1%})"
        )
    consent = validation.get("consent")
    if consent is not None:
        sampled, holding = int(consent["sampled_members"]), int(consent["holding"])
        note = (
            f"consent: {holding:,} of {sampled:,} sampled segment members hold consent "
            f"({holding / sampled if sampled else 0.0:.1%})"
        )
        if sampled and holding == 0:
            note += (
                "; none does: check the consent field and values, or the next run removes "
                "every member from the audience"
            )
        notes.append(note)
    return notes


def _check_audience(audience: AudienceInfo, connection: Connection, audience_id: str) -> None:
    if audience.source_type.upper() != FIRST_PARTY:
        raise UserInputError(
            f"Snapchat audience {audience_id} is not a customer list ({audience.source_type}): "
            "choose a Customer List audience",
            field="audience_id",
            fix=Fix("create_audience"),
        )
    reachable = {a["id"] for a in connection.ad_accounts}
    if audience.ad_account_id not in reachable:
        raise UserInputError(
            f"Snapchat audience {audience_id} belongs to an ad account connection "
            f"{connection.name!r} does not reach: use an audience of one of its ad accounts "
            f"({_accounts(connection)}).",
            field="audience_id",
        )


def _accounts(connection: Connection) -> str:
    """The ad accounts a connection reaches, in words."""
    names = [f"{a['name']} ({a['id']})" for a in connection.ad_accounts]
    return ", ".join(names) if names else "none"


def _resolve_ad_account(spec: ExportSpec, connection: Connection) -> str:
    accounts = [a["id"] for a in connection.ad_accounts]
    if spec.ad_account_id:
        if spec.ad_account_id not in accounts:
            raise UserInputError(
                f"connection {connection.name!r} does not reach ad account {spec.ad_account_id}: "
                f"it reaches {_accounts(connection)}.",
                field="ad_account_id",
            )
        return spec.ad_account_id
    if len(accounts) == 1:
        return accounts[0]
    if not accounts:
        raise UserInputError(
            f"connection {connection.name!r} reaches no ad account: give its Snapchat user the "
            "Data Manager role on one, then re-authenticate the connection.",
            field="connection",
            fix=Fix("reauthenticate", connection.name),
        )
    raise UserInputError(
        f"connection {connection.name!r} reaches several ad accounts "
        f"({_accounts(connection)}): choose the one the new audience goes in.",
        field="ad_account_id",
    )


def _usable_connection(session: Session, actor: Actor, name: str) -> Connection:
    """The connection if ``actor`` may export through it (contributors: shared ones only)."""
    row = session.scalar(select(Connection).where(Connection.name == name))
    if row is None or not may_use(actor, row):
        raise NotFoundError(
            f"there is no connection named {name!r} you can use.",
            field="connection",
            fix=Fix("list", "connections"),
        )
    if row.status == NEEDS_REAUTH:
        raise ConflictError(
            f"connection {name!r} needs re-authentication before exports can use it.",
            field="connection",
            fix=Fix("reauthenticate", name),
        )
    return row


def require_export_access(session: Session, actor: Actor, export: Export) -> None:
    """Contributors may touch exports only on connections shared with contributors.

    Raises PermissionDeniedError (viewers; contributors on admin-only or no connection).
    """
    require(actor, Action.EDIT_EXPORTS)
    if actor.role is Role.ADMIN:
        return
    connection = session.get(Connection, export.connection_id) if export.connection_id else None
    if connection is None or not may_use(actor, connection):
        raise PermissionDeniedError(
            f"export {export.name!r} uses a connection for administrators only: "
            "ask an administrator."
        )


@dataclass(frozen=True)
class _Resolved:
    """What a spec names, read from the control database (detached rows)."""

    connection: Connection
    segments: list[Segment]
    dataset: Dataset


def _resolve(session: Session, actor: Actor, spec: ExportSpec, export_id: int | None) -> _Resolved:
    """Look up what ``spec`` names and check it locally (no remote call)."""
    connection = _usable_connection(session, actor, spec.connection)
    check_alert_choices(session, spec.alert_channels, spec.alert_events, spec.alert_reject_share)
    segments, dataset = _segments(session, spec.segments)
    if not spec.create_audience:
        # Before asking Snapchat: a new audience is never another export's.
        assert spec.audience_id is not None
        other = session.scalar(
            select(Export.name).where(
                Export.audience_id == spec.audience_id,
                Export.id != (export_id if export_id is not None else -1),
            )
        )
        if other is not None:
            raise ConflictError(
                f"Snapchat audience {spec.audience_id} is already the audience of export "
                f"{other!r}: give each export its own audience (two mirror exports would "
                "remove each other's members)",
                field="audience_id",
                fix=Fix("create_audience"),
            )
    return _Resolved(connection, segments, dataset)


def _check_remote(
    ctx: Context, spec: ExportSpec, resolved: _Resolved
) -> tuple[AudienceInfo, dict[str, Any]]:
    """Check the data and Snapchat; the audience and the field report.

    Called outside any control-database transaction: no row is held while Snapchat
    answers (the write that follows re-reads and re-checks what it changes).
    """
    connection = resolved.connection
    validation = _check_fields(ctx, spec, resolved.dataset)
    destination = open_destination(ctx, connection)
    try:
        if spec.create_audience:
            account = _resolve_ad_account(spec, connection)
            audience = destination.create_audience(
                account,
                spec.audience_name or spec.name,
                description=spec.audience_description or f"audiencesync export {spec.name}",
                retention_days=spec.retention_days,
            )
        else:
            assert spec.audience_id is not None
            try:
                audience = destination.describe_audience(spec.audience_id)
            except DestinationNotFoundError:
                raise UserInputError(
                    f"Snapchat has no audience {spec.audience_id} that connection "
                    f"{connection.name!r} can see (an audience's id is the number in its URL "
                    "in Snapchat Audience Manager): choose one of its audiences",
                    field="audience_id",
                    fix=Fix("create_audience"),
                ) from None
            except DestinationPermissionError:
                raise UserInputError(
                    f"Snapchat audience {spec.audience_id} belongs to an ad account connection "
                    f"{connection.name!r} does not reach: use an audience of one of its ad "
                    f"accounts ({_accounts(connection)}), or give its Snapchat user access to "
                    "that account and re-authenticate.",
                    field="audience_id",
                ) from None
            _check_audience(audience, connection, spec.audience_id)
    finally:
        destination.close()
    return audience, validation


def _write(
    session: Session,
    actor: Actor,
    spec: ExportSpec,
    row: Export | None,
    resolved: _Resolved,
    audience: AudienceInfo,
    validation: dict[str, Any],
) -> Export:
    """Write a checked ``spec`` into ``row`` (a new export when None)."""
    if row is None:
        row = Export(name=spec.name, created_by=actor.name, created_at=utcnow())
        session.add(row)
    row.name = spec.name
    row.connection_id = resolved.connection.id
    row.dataset_id = resolved.dataset.id
    row.audience_id = audience.id
    row.audience_name = audience.name
    row.ad_account_id = audience.ad_account_id
    row.email_field = spec.email_field
    row.phone_field = spec.phone_field
    row.maid_field = spec.maid_field
    row.default_country = spec.default_country
    row.mode = spec.mode
    row.schedule = spec.schedule
    row.timezone = spec.timezone
    row.enabled = spec.enabled
    row.max_removal_share = spec.max_removal_share
    row.consent_field = spec.consent_field
    row.consent_values = list(spec.consent_values) or None
    row.validation = validation
    row.updated_at = utcnow()
    session.flush()
    for link in session.scalars(select(ExportSegment).where(ExportSegment.export_id == row.id)):
        session.delete(link)
    session.flush()
    for segment in resolved.segments:
        session.add(ExportSegment(export_id=row.id, segment_id=segment.id))
    session.flush()
    if (spec.alert_channels, spec.alert_events, spec.alert_reject_share) != (None, None, None):
        set_export_alerts(
            session, row.id, channels=spec.alert_channels, events=spec.alert_events,
            reject_share_threshold=spec.alert_reject_share,
        )  # fmt: skip
    return row


def _state(row: Export, segments: list[str]) -> dict[str, Any]:
    return {
        "connection_id": row.connection_id,
        "audience_id": row.audience_id,
        "segments": segments,
        "email_field": row.email_field,
        "phone_field": row.phone_field,
        "maid_field": row.maid_field,
        "default_country": row.default_country,
        "mode": row.mode,
        "schedule": row.schedule,
        "timezone": row.timezone,
        "enabled": row.enabled,
        "max_removal_share": row.max_removal_share,
        "consent_field": row.consent_field,
        "consent_values": list(row.consent_values or []),
    }


def export_segment_names(session: Session, export_id: int) -> list[str]:
    return list(
        session.scalars(
            select(Segment.name)
            .join(ExportSegment, ExportSegment.segment_id == Segment.id)
            .where(ExportSegment.export_id == export_id)
            .order_by(Segment.name)
        )
    )


#: What contributors see in place of the name of a connection not shared with them.
HIDDEN_CONNECTION = "(an administrators' connection)"


def _view(session: Session, row: Export, actor: Actor, storage: Storage) -> ExportView:
    connection = session.get(Connection, row.connection_id) if row.connection_id else None
    dataset = session.get(Dataset, row.dataset_id)
    last = session.scalar(
        select(Run).where(Run.export_id == row.id).order_by(Run.id.desc()).limit(1)
    )
    next_at = None
    now = utcnow()
    system = current_schedule(session, now)
    needs_reauth = connection is not None and connection.status == NEEDS_REAUTH
    if row.enabled and connection is not None and not needs_reauth:
        next_at = next_run_at(row.schedule, row.timezone, now)
        if row.schedule == "system" and system is not None:
            next_at = system.next_run_at  # None while the system refresh is off
    words = export_schedule_sentence(
        schedule=row.schedule, timezone=row.timezone, enabled=row.enabled,
        connected=connection is not None, needs_reauth=needs_reauth, system=system,
        next_run_at=next_at,
    )  # fmt: skip
    hidden = connection is not None and not visible(actor, connection)
    segments = tuple(export_segment_names(session, row.id))
    if not segments and session.scalar(select(Export.id).where(Export.id == row.id)) is None:
        # Every export has a segment: none means a removal committed between the reads
        # above (they are separate statements), so the true answer is "no such export".
        raise _no_export(row.name)
    return ExportView(
        name=row.name,
        connection=(
            None if connection is None else HIDDEN_CONNECTION if hidden else connection.name
        ),
        connection_status=None if connection is None or hidden else connection.status,
        audience_id=row.audience_id,
        audience_name=row.audience_name,
        ad_account_id="" if hidden else row.ad_account_id,
        dataset=dataset.name if dataset else "",
        segments=segments,
        email_field=row.email_field,
        phone_field=row.phone_field,
        maid_field=row.maid_field,
        default_country=row.default_country,
        mode=row.mode,
        enabled=row.enabled,
        schedule=row.schedule,
        timezone=row.timezone,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        validation=dict(row.validation or {}),
        last_run_status=last.status if last else None,
        last_run_at=(last.finished_at or last.started_at or last.queued_at) if last else None,
        next_run_at=next_at,
        schedule_sentence=words,
        audience=audience_summary(session, row.id, storage),
        max_removal_share=row.max_removal_share,
        alerts=export_alerts(session, row.id),
        consent_field=row.consent_field,
        consent_values=tuple(row.consent_values or ()),
    )


def refuse_while_running(session: Session, export: Export, doing: str) -> None:
    """ConflictError while a run of ``export`` is queued or running."""
    active = session.scalar(
        select(Run).where(Run.export_id == export.id, Run.status.in_(ACTIVE_STATUSES))
    )
    if active is not None:
        raise ActiveRunError(
            f"export {export.name!r} already has run {active.id} {active.status}: wait for "
            f"it before you {doing} it",
            run_id=active.id,
        )


def get_row(session: Session, name: str) -> Export:
    row = session.scalar(select(Export).where(Export.name == name))
    if row is None:
        raise _no_export(name)
    return row


def _no_export(name: str) -> NotFoundError:
    return NotFoundError(f"there is no export named {name!r}.", fix=Fix("list", "exports"))


def _refuse_taken(session: Session, name: str, export_id: int | None) -> None:
    other = session.scalar(select(Export.id).where(Export.name == name))
    if other is not None and other != export_id:
        raise ConflictError(
            f"an export named {name!r} already exists: choose another.", field="name"
        )


def add_export(ctx: Context, actor: Actor, spec: ExportSpec) -> ExportView:
    """Check ``spec`` against the data and Snapchat and save it. Does not run it."""
    require(actor, Action.EDIT_EXPORTS)
    spec = _check_spec(spec)
    with ctx.db.session() as session:
        _refuse_taken(session, spec.name, None)
        resolved = _resolve(session, actor, spec, None)
    audience, validation = _check_remote(ctx, spec, resolved)
    with ctx.db.session() as session:
        # Re-checked: the name, connection, segments or audience may have changed meanwhile.
        _refuse_taken(session, spec.name, None)
        resolved = _resolve(session, actor, spec, None)
        row = _write(session, actor, spec, None, resolved, audience, validation)
        audit.record(
            session, actor, "export.create", f"export:{row.name}",
            after=_state(row, sorted(set(spec.segments))),
        )  # fmt: skip
        return _view(session, row, actor, ctx.storage)


def spec_of(view: ExportView) -> ExportSpec:
    """The spec that reproduces an export (a starting point for edits)."""
    return ExportSpec(
        name=view.name,
        connection=view.connection or "",
        segments=view.segments,
        email_field=view.email_field,
        phone_field=view.phone_field,
        maid_field=view.maid_field,
        default_country=view.default_country,
        audience_id=view.audience_id,
        mode=view.mode,
        schedule=view.schedule,
        timezone=view.timezone,
        enabled=view.enabled,
        max_removal_share=view.max_removal_share,
        alert_channels=view.alerts.channels,
        alert_events=view.alerts.events,
        alert_reject_share=view.alerts.reject_share_threshold,
        consent_field=view.consent_field,
        consent_values=view.consent_values,
    )


def update_export(ctx: Context, actor: Actor, name: str, spec: ExportSpec) -> ExportView:
    """Replace an export's definition with ``spec`` (checked as on add).

    Snapchat is asked between two transactions; the write then re-reads the export and
    refuses (ConflictError) if it was removed or changed by someone else meanwhile.
    """
    with ctx.db.session() as session:
        row = get_row(session, name)
        require_export_access(session, actor, row)
        # Who may change it comes first: a viewer's bad field is a 403, not a 400.
        spec = _check_spec(spec)
        refuse_while_running(session, row, "change")
        _refuse_taken(session, spec.name, row.id)
        export_id = row.id
        seen = (row.name, _state(row, export_segment_names(session, row.id)))
        resolved = _resolve(session, actor, spec, export_id)
    audience, validation = _check_remote(ctx, spec, resolved)
    with ctx.db.session() as session:
        current = session.get(Export, export_id, with_for_update=True)
        if current is None:
            raise ConflictError(
                f"export {name!r} was removed while this change was being checked with "
                "Snapchat: nothing was saved."
            )
        before = _state(current, export_segment_names(session, export_id))
        if (current.name, before) != seen:
            raise ConflictError(
                f"export {name!r} was changed by someone else while this change was being "
                "checked with Snapchat: nothing was saved; reload it and try again."
            )
        require_export_access(session, actor, current)
        refuse_while_running(session, current, "change")
        _refuse_taken(session, spec.name, export_id)
        resolved = _resolve(session, actor, spec, export_id)
        changed_audience = current.audience_id != audience.id
        row = _write(session, actor, spec, current, resolved, audience, validation)
        after = _state(row, export_segment_names(session, row.id))
        audit.record(
            session, actor, "export.update", f"export:{row.name}", before=before, after=after
        )
        if changed_audience:
            # Held count, drift and next reading were of the old audience: none carries over.
            audience_moved(session, row.id)
            log.info("export %s now targets another audience; its snapshot restarts", row.name)
        return _view(session, row, actor, ctx.storage)


def duplicate_export(ctx: Context, actor: Actor, name: str, new_name: str) -> ExportView:
    """A copy of an export under a new name, disabled until reviewed."""
    original = get_export(ctx, actor, name)
    if original.connection is None:
        raise ConflictError(
            f"export {name!r} has no connection: give it one before duplicating it."
        )
    # One export per audience: the copy gets a new customer list in the same ad account.
    spec = replace(
        spec_of(original),
        name=new_name,
        enabled=False,
        audience_id=None,
        create_audience=True,
        audience_name=f"{original.audience_name} ({new_name})",
        ad_account_id=original.ad_account_id,
    )
    return add_export(ctx, actor, spec)


def set_enabled(ctx: Context, actor: Actor, name: str, *, enabled: bool) -> ExportView:
    with ctx.db.session() as session:
        row = get_row(session, name)
        require_export_access(session, actor, row)
        if enabled and row.connection_id is None:
            raise ConflictError(
                f"export {name!r} is detached from its connection: give it a connection first",
                fix=Fix("set_connection", name),
            )
        before = row.enabled
        row.enabled = enabled
        audit.record(
            session, actor, "export.enable" if enabled else "export.disable", f"export:{name}",
            before={"enabled": before}, after={"enabled": enabled},
        )  # fmt: skip
        return _view(session, row, actor, ctx.storage)


def remove_export(ctx: Context, actor: Actor, name: str) -> None:
    """Remove an export and its run history; the Snapchat audience itself is kept."""
    with ctx.db.session() as session:
        row = get_row(session, name)
        require_export_access(session, actor, row)
        refuse_while_running(session, row, "remove")
        audit.record(
            session, actor, "export.remove", f"export:{name}",
            before=_state(row, export_segment_names(session, row.id)),
        )  # fmt: skip
        export_id = row.id
        session.delete(row)
    from audiencesync.sync.snapshot import remove_snapshot

    remove_snapshot(ctx, export_id)


def _sweep_interrupted(ctx: Context) -> None:
    """Mark runs whose worker died (lease expired) ``interrupted`` before showing exports.

    The same sweep every run start and every worker loop makes (``runs.mark_interrupted``):
    without ``serve`` running, nothing else would, and a killed run would show as
    ``running`` (its identifiers held as if settled) until the next run.
    """
    from audiencesync.sync.runs import mark_interrupted  # runs imports this module

    try:
        mark_interrupted(ctx)
    except Exception as error:  # noqa: BLE001 - showing exports must not depend on it
        log.warning("could not mark interrupted runs (%s)", type(error).__name__)


def list_exports(ctx: Context, actor: Actor) -> list[ExportView]:
    require(actor, Action.READ)
    _sweep_interrupted(ctx)
    with ctx.db.session() as session:
        return [
            _view(session, r, actor, ctx.storage)
            for r in session.scalars(select(Export).order_by(Export.name))
        ]


def get_export(ctx: Context, actor: Actor, name: str) -> ExportView:
    require(actor, Action.READ)
    _sweep_interrupted(ctx)
    with ctx.db.session() as session:
        return _view(session, get_row(session, name), actor, ctx.storage)


def usable_connection(session: Session, actor: Actor, name: str) -> Connection:
    """The connection if ``actor`` may export through it (refused while it needs re-auth)."""
    return _usable_connection(session, actor, name)
