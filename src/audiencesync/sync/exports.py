"""Export definitions: which segments go to which audience, through which connection.

Seed steps (Data > Exports > Add destination): a connection the user may use, the
Snapchat audience id (or have one created), data matching (email, and optionally phone and
mobile ad id fields), segments, mode. Saving checks everything it can against Snapchat and
the data, and does not run the export.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import select
from sqlalchemy.orm import Session

from audiencesync.control import audit
from audiencesync.control.context import Context
from audiencesync.control.models import Dataset, Role, Segment, utcnow
from audiencesync.control.permissions import Action, Actor, require
from audiencesync.control.sync_models import Connection, Export, ExportSegment, Run
from audiencesync.destinations.base import AudienceInfo
from audiencesync.errors import (
    ConflictError,
    DestinationNotFoundError,
    DestinationPermissionError,
    NotFoundError,
    PermissionDeniedError,
    UserInputError,
)
from audiencesync.identifiers import RejectReason, hash_batch
from audiencesync.profiles.store import closest
from audiencesync.segments.source import open_source
from audiencesync.sync.connections import may_use, visible
from audiencesync.sync.destinations import NEEDS_REAUTH, open_destination
from audiencesync.types import IdentifierType

log = logging.getLogger(__name__)

MODES = ("mirror", "add-only")
FIRST_PARTY = "FIRST_PARTY"
SAMPLE_ROWS = 1000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$")


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
    retention_days: int = 9999
    ad_account_id: str | None = None
    mode: str = "mirror"
    schedule: str = "system"
    timezone: str = "UTC"
    enabled: bool = True


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
    """When an export's own cron schedule fires next (None for system or manual)."""
    if schedule in ("system", "manual"):
        return None
    local = after.astimezone(ZoneInfo(timezone))
    fired: datetime = croniter(schedule, local).get_next(datetime)
    return fired


def _check_spec(spec: ExportSpec) -> ExportSpec:
    name = spec.name.strip()
    if not _NAME.match(name):
        raise UserInputError(
            f"{spec.name!r} is not a valid export name: use letters, digits, spaces, '.', '_' "
            "or '-', at most 100 characters."
        )
    if spec.mode not in MODES:
        raise UserInputError(f"unknown mode {spec.mode!r}: use mirror or add-only.")
    if not spec.segments:
        raise UserInputError("an export needs at least one segment: pass --segment NAME.")
    if not identifier_fields(spec):
        raise UserInputError(
            "an export needs an identifier field to match people on: map the email field "
            "(--email-field), or a phone (--phone-field) or mobile ad id (--maid-field) field."
        )
    if spec.create_audience == bool(spec.audience_id):
        raise UserInputError(
            "give the Snapchat audience id (--audience-id) or ask for a new audience "
            "(--create-audience), one of the two."
        )
    if spec.audience_id is not None and not spec.audience_id.strip().isdigit():
        raise UserInputError(
            f"{spec.audience_id!r} is not a Snapchat audience id: it is the number in the "
            "audience's URL in Snapchat Audience Manager."
        )
    if not 1 <= spec.retention_days <= 9999:
        raise UserInputError("--retention-days must be between 1 and 9999 (9999 = lifetime).")
    country = spec.default_country
    if country is not None and not re.fullmatch(r"[A-Za-z]{2}", country):
        raise UserInputError(
            f"{country!r} is not a country code: use two letters, for example US or GB."
        )
    try:
        ZoneInfo(spec.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserInputError(
            f"unknown time zone {spec.timezone!r}: use a name like UTC or Europe/Paris."
        ) from None
    if spec.schedule not in ("system", "manual") and not croniter.is_valid(spec.schedule):
        raise UserInputError(
            f"{spec.schedule!r} is not a schedule: use system (follow the refresh schedule), "
            "manual, or a cron expression such as '0 6 * * *'."
        )
    return replace(
        spec,
        name=name,
        audience_id=spec.audience_id.strip() if spec.audience_id else None,
        default_country=country.upper() if country else None,
    )


def _segments(session: Session, names: tuple[str, ...]) -> tuple[list[Segment], Dataset]:
    rows = []
    for name in dict.fromkeys(names):
        row = session.scalar(select(Segment).where(Segment.name == name))
        if row is None:
            raise NotFoundError(
                f"there is no segment named {name!r}: see `audiencesync segments list`."
            )
        rows.append(row)
    datasets = {r.dataset_id for r in rows}
    if len(datasets) > 1:
        raise UserInputError(
            "the segments of one export must be over the same profile dataset: "
            "make one export per dataset."
        )
    dataset = session.get(Dataset, datasets.pop())
    assert dataset is not None  # a segment's dataset cannot be removed (RESTRICT)
    return rows, dataset


def _check_fields(ctx: Context, spec: ExportSpec, dataset: Dataset) -> dict[str, Any]:
    """Check mapped fields exist; sample values and report the share that would be rejected."""
    columns = [c["name"] for c in dataset.columns]
    mapped = identifier_fields(spec)
    for kind, name in mapped.items():
        if name not in columns:
            raise UserInputError(
                f"the {kind.value} field {name!r} is not a column of dataset "
                f"{dataset.name!r}: {closest(name, columns)}."
            )
    report: dict[str, Any] = {"sampled_rows": 0, "rejected_share": {}, "rejected_reasons": {}}
    with open_source(ctx, dataset.name) as source:
        sample = source.table.select(*dict.fromkeys(mapped.values())).limit(SAMPLE_ROWS)
        table = sample.to_pyarrow()
    report["sampled_rows"] = table.num_rows
    for kind, name in mapped.items():
        column = table.column(name).cast("string")
        hashed = hash_batch(kind, column, default_country=spec.default_country)
        present = table.num_rows - column.null_count
        rejected = sum(n for reason, n in hashed.rejected.items() if reason != RejectReason.EMPTY)
        share = rejected / present if present else 0.0
        report["rejected_share"][kind.value] = round(share, 4)
        report["rejected_reasons"][kind.value] = {
            str(reason): n for reason, n in hashed.rejected.items()
        }
        if present and share > 0.5:
            raise UserInputError(
                f"{share:.0%} of the sampled values of field {name!r} are not valid "
                f"{kind.value} identifiers: check that the {kind.value} field is mapped to the "
                "right column (or, for phones, pass --default-country)."
            )
    return report


def _check_audience(audience: AudienceInfo, connection: Connection, audience_id: str) -> None:
    if audience.source_type.upper() != FIRST_PARTY:
        raise UserInputError(
            f"Snapchat audience {audience_id} is not a customer list ({audience.source_type}): "
            "give the id of a Customer List audience, or pass --create-audience."
        )
    reachable = {a["id"] for a in connection.ad_accounts}
    if audience.ad_account_id not in reachable:
        raise UserInputError(
            f"Snapchat audience {audience_id} belongs to an ad account connection "
            f"{connection.name!r} does not reach: use an audience of one of its ad accounts "
            "(see `audiencesync connections show`)."
        )


def _resolve_ad_account(spec: ExportSpec, connection: Connection) -> str:
    accounts = [a["id"] for a in connection.ad_accounts]
    if spec.ad_account_id:
        if spec.ad_account_id not in accounts:
            raise UserInputError(
                f"connection {connection.name!r} does not reach ad account {spec.ad_account_id}: "
                "see `audiencesync connections show` for the ones it does."
            )
        return spec.ad_account_id
    if len(accounts) == 1:
        return accounts[0]
    if not accounts:
        raise UserInputError(
            f"connection {connection.name!r} reaches no ad account: give its Snapchat user the "
            "Data Manager role on one, then re-authenticate the connection."
        )
    raise UserInputError(
        f"connection {connection.name!r} reaches several ad accounts: pass --ad-account ID "
        "to say which one the new audience goes in."
    )


def _usable_connection(session: Session, actor: Actor, name: str) -> Connection:
    """The connection if ``actor`` may export through it (contributors: shared ones only)."""
    row = session.scalar(select(Connection).where(Connection.name == name))
    if row is None or not may_use(actor, row):
        raise NotFoundError(
            f"there is no connection named {name!r} you can use: see "
            "`audiencesync connections list`."
        )
    if row.status == NEEDS_REAUTH:
        raise ConflictError(
            f"connection {name!r} needs re-authentication: an administrator must run "
            f"`audiencesync connections reauth {name}`."
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


def _apply(
    ctx: Context, actor: Actor, session: Session, spec: ExportSpec, row: Export | None
) -> Export:
    """Validate ``spec`` against the data and Snapchat, then write it into ``row``."""
    connection = _usable_connection(session, actor, spec.connection)
    segments, dataset = _segments(session, spec.segments)
    validation = _check_fields(ctx, spec, dataset)
    if not spec.create_audience:
        # Before asking Snapchat: a new audience is never another export's.
        assert spec.audience_id is not None
        other = session.scalar(
            select(Export.name).where(
                Export.audience_id == spec.audience_id,
                Export.id != (row.id if row is not None else -1),
            )
        )
        if other is not None:
            raise ConflictError(
                f"Snapchat audience {spec.audience_id} is already the audience of export "
                f"{other!r}: give each export its own audience (two mirror exports would "
                "remove each other's members), or pass --create-audience."
            )
    destination = open_destination(ctx, connection)
    try:
        if spec.create_audience:
            account = _resolve_ad_account(spec, connection)
            audience = destination.create_audience(
                account,
                spec.audience_name or spec.name,
                description=f"audiencesync export {spec.name}",
                retention_days=spec.retention_days,
            )
        else:
            assert spec.audience_id is not None
            try:
                audience = destination.describe_audience(spec.audience_id)
            except DestinationNotFoundError:
                raise UserInputError(
                    f"Snapchat has no audience {spec.audience_id} that connection "
                    f"{connection.name!r} can see: copy the id from the audience's URL in "
                    "Snapchat Audience Manager, or pass --create-audience."
                ) from None
            except DestinationPermissionError:
                raise UserInputError(
                    f"Snapchat audience {spec.audience_id} belongs to an ad account connection "
                    f"{connection.name!r} does not reach: use an audience of one of its ad "
                    "accounts (see `audiencesync connections show`), or give its Snapchat user "
                    "access to that account and re-authenticate."
                ) from None
            _check_audience(audience, connection, spec.audience_id)
    finally:
        destination.close()
    if row is None:
        row = Export(name=spec.name, created_by=actor.name, created_at=utcnow())
        session.add(row)
    row.name = spec.name
    row.connection_id = connection.id
    row.dataset_id = dataset.id
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
    row.validation = validation
    row.updated_at = utcnow()
    session.flush()
    for link in session.scalars(select(ExportSegment).where(ExportSegment.export_id == row.id)):
        session.delete(link)
    session.flush()
    for segment in segments:
        session.add(ExportSegment(export_id=row.id, segment_id=segment.id))
    session.flush()
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


def _view(session: Session, row: Export, actor: Actor) -> ExportView:
    connection = session.get(Connection, row.connection_id) if row.connection_id else None
    dataset = session.get(Dataset, row.dataset_id)
    last = session.scalar(
        select(Run).where(Run.export_id == row.id).order_by(Run.id.desc()).limit(1)
    )
    next_at = None
    if row.enabled and connection is not None:
        next_at = next_run_at(row.schedule, row.timezone, utcnow())
    hidden = connection is not None and not visible(actor, connection)
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
        segments=tuple(export_segment_names(session, row.id)),
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
    )


def refuse_while_running(session: Session, export: Export, doing: str) -> None:
    """ConflictError while a run of ``export`` is queued or running."""
    active = session.scalar(
        select(Run).where(Run.export_id == export.id, Run.status.in_(["queued", "running"]))
    )
    if active is not None:
        raise ConflictError(
            f"export {export.name!r} already has run {active.id} {active.status}: wait for "
            f"it, or cancel it with `audiencesync runs cancel {active.id}`, before you "
            f"{doing} it."
        )


def get_row(session: Session, name: str) -> Export:
    row = session.scalar(select(Export).where(Export.name == name))
    if row is None:
        raise NotFoundError(f"there is no export named {name!r}: see `audiencesync exports list`.")
    return row


def add_export(ctx: Context, actor: Actor, spec: ExportSpec) -> ExportView:
    """Check ``spec`` against the data and Snapchat and save it. Does not run it."""
    require(actor, Action.EDIT_EXPORTS)
    spec = _check_spec(spec)
    with ctx.db.session() as session:
        if session.scalar(select(Export).where(Export.name == spec.name)) is not None:
            raise ConflictError(f"an export named {spec.name!r} already exists: choose another.")
        row = _apply(ctx, actor, session, spec, None)
        audit.record(
            session, actor, "export.create", f"export:{row.name}",
            after=_state(row, sorted(set(spec.segments))),
        )  # fmt: skip
        return _view(session, row, actor)


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
    )


def update_export(ctx: Context, actor: Actor, name: str, spec: ExportSpec) -> ExportView:
    """Replace an export's definition with ``spec`` (checked as on add)."""
    spec = _check_spec(spec)
    with ctx.db.session() as session:
        row = get_row(session, name)
        require_export_access(session, actor, row)
        refuse_while_running(session, row, "change")
        if spec.name != row.name and session.scalar(select(Export).where(Export.name == spec.name)):
            raise ConflictError(f"an export named {spec.name!r} already exists: choose another.")
        before = _state(row, export_segment_names(session, row.id))
        changed_audience = row.audience_id != spec.audience_id
        row = _apply(ctx, actor, session, spec, row)
        after = _state(row, export_segment_names(session, row.id))
        audit.record(
            session, actor, "export.update", f"export:{row.name}", before=before, after=after
        )
        if changed_audience:
            log.info("export %s now targets another audience; its snapshot restarts", row.name)
        return _view(session, row, actor)


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
                f"export {name!r} is detached from its connection: give it a connection with "
                f"`audiencesync exports update {name} --connection NAME` first."
            )
        before = row.enabled
        row.enabled = enabled
        audit.record(
            session, actor, "export.enable" if enabled else "export.disable", f"export:{name}",
            before={"enabled": before}, after={"enabled": enabled},
        )  # fmt: skip
        return _view(session, row, actor)


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


def list_exports(ctx: Context, actor: Actor) -> list[ExportView]:
    require(actor, Action.READ)
    with ctx.db.session() as session:
        return [
            _view(session, r, actor) for r in session.scalars(select(Export).order_by(Export.name))
        ]


def get_export(ctx: Context, actor: Actor, name: str) -> ExportView:
    require(actor, Action.READ)
    with ctx.db.session() as session:
        return _view(session, get_row(session, name), actor)
