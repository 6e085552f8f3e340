"""Control-database models of connections, exports, runs and the refresh schedule."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from audiencesync.control.models import Base, utcnow


class Connection(Base):
    """A connection to an ad platform account, made by OAuth, with recorded consent."""

    __tablename__ = "connections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    type: Mapped[str] = mapped_column(String(30), default="snapchat")
    #: administrators only (False, the default) or administrators and contributors.
    shared_with_contributors: Mapped[bool] = mapped_column(Boolean, default=False)
    #: "active" or "needs_reauth" (the refresh token was refused).
    status: Mapped[str] = mapped_column(String(30), default="active")
    consent_by: Mapped[str] = mapped_column(String(100))
    consent_at: Mapped[datetime] = mapped_column()
    consent_version: Mapped[str] = mapped_column(String(64))
    #: the audiencesync user recorded as the connection's export user.
    export_user: Mapped[str] = mapped_column(String(100))
    platform_user_id: Mapped[str] = mapped_column(String(200), default="")
    platform_user_name: Mapped[str] = mapped_column(String(300), default="")
    organization_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: list of {"id", "name", "organization_id"}.
    ad_accounts: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    authenticated_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class Export(Base):
    """An export: segments of a dataset sent to one audience through one connection."""

    __tablename__ = "exports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    #: None when the connection was removed with --detach: the export is then inactive.
    connection_id: Mapped[int | None] = mapped_column(
        ForeignKey("connections.id", ondelete="SET NULL"), nullable=True
    )
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    audience_id: Mapped[str] = mapped_column(String(64))
    audience_name: Mapped[str] = mapped_column(String(400), default="")
    ad_account_id: Mapped[str] = mapped_column(String(64), default="")
    email_field: Mapped[str | None] = mapped_column(String(300), nullable=True)
    phone_field: Mapped[str | None] = mapped_column(String(300), nullable=True)
    maid_field: Mapped[str | None] = mapped_column(String(300), nullable=True)
    default_country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    #: "mirror" (adds and removals) or "add-only".
    mode: Mapped[str] = mapped_column(String(20), default="mirror")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: "system" (follows the system refresh), "manual", or a cron expression.
    schedule: Mapped[str] = mapped_column(String(100), default="system")
    timezone: Mapped[str] = mapped_column(String(60), default="UTC")
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    #: share of sampled values per identifier type that would be rejected, at last save.
    validation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: when the export's own cron schedule last fired.
    last_scheduled_at: Mapped[datetime | None] = mapped_column(nullable=True)
    #: a mirror run removing more than this share of the held identifiers waits for
    #: approval (as does one whose segments became empty).
    max_removal_share: Mapped[float] = mapped_column(Float, default=0.2, server_default="0.2")
    #: a field holding each profile's consent (docs/privacy.md): None sends every member.
    consent_field: Mapped[str | None] = mapped_column(String(300), nullable=True)
    #: the values that mean consent (compared trimmed, any case); None or empty: the
    #: field is a boolean and true means consent.
    consent_values: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)


class ExportSegment(Base):
    __tablename__ = "export_segments"
    __table_args__ = (UniqueConstraint("export_id", "segment_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    export_id: Mapped[int] = mapped_column(ForeignKey("exports.id", ondelete="CASCADE"))
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id"))


#: The statuses of a run that holds its export: at most one such run per export, which
#: the partial unique index ``uq_runs_one_active`` enforces in the database itself.
ACTIVE_STATUSES = ("queued", "running")
_ACTIVE = text("status IN ('queued', 'running')")


class Run(Base):
    """One run of an export: what it did, how far it got, what went wrong."""

    __tablename__ = "runs"
    __table_args__ = (
        Index(
            "uq_runs_one_active",
            "export_id",
            unique=True,
            sqlite_where=_ACTIVE,
            postgresql_where=_ACTIVE,
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    export_id: Mapped[int] = mapped_column(ForeignKey("exports.id", ondelete="CASCADE"), index=True)
    #: "schedule", "on_demand" or "api".
    trigger: Mapped[str] = mapped_column(String(20))
    requested_by: Mapped[str] = mapped_column(String(100))
    #: queued, running, succeeded, partially_succeeded, needs_approval, approved,
    #: dismissed, failed, cancelled, interrupted (``sync.runs.STATUSES``).
    status: Mapped[str] = mapped_column(String(30), index=True)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    full: Mapped[bool] = mapped_column(Boolean, default=False)
    #: empty the audience first, then upload every current member (repairs drift).
    replace: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    #: counters: members, identifiers by type, rejected by reason, added, removed, ...
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: up to 100 (profile key, reason) samples per reason; never raw values.
    reject_samples: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: {"phase": ..., "done": n, "total": n}
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: the audience as read back after the run.
    audience: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: plain-words errors, newest last.
    errors: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: an approval run: the needs_approval run whose held removals it sends.
    approves_run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: an erasure run (trigger ``erasure``): the erasure whose identifiers it removes.
    erasure_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ExportLease(Base):
    """At most one running run per export; the lease expires if its worker dies."""

    __tablename__ = "export_leases"

    export_id: Mapped[int] = mapped_column(
        ForeignKey("exports.id", ondelete="CASCADE"), primary_key=True
    )
    run_id: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column()


class SystemSchedule(Base):
    """The system refresh schedule: sources, then segments, then exports. Off by default."""

    __tablename__ = "system_schedule"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    cron: Mapped[str] = mapped_column(String(100), default="0 3 * * *")
    timezone: Mapped[str] = mapped_column(String(60), default="UTC")
    last_fired_at: Mapped[datetime | None] = mapped_column(nullable=True)
    updated_by: Mapped[str | None] = mapped_column(String(100), nullable=True)


class AudienceReading(Base):
    """One reading of an export's audience at Snapchat, with what audiencesync held then."""

    __tablename__ = "audience_readings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    export_id: Mapped[int] = mapped_column(ForeignKey("exports.id", ondelete="CASCADE"), index=True)
    #: the run whose upload this reading follows (None: read before any run).
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    audience_id: Mapped[str] = mapped_column(String(64))
    read_at: Mapped[datetime] = mapped_column()
    #: "run" (at the end of a run), "follow_up" (the scheduler), "on_demand".
    trigger: Mapped[str] = mapped_column(String(20))
    approximate_number_users: Mapped[int | None] = mapped_column(Integer, nullable=True)
    upload_status: Mapped[str | None] = mapped_column(String(30), nullable=True)
    targetable_status: Mapped[str | None] = mapped_column(String(30), nullable=True)
    #: identifiers confirmed in the audience (the snapshot) when it was read; None: unknown.
    identifiers_held: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: why the audience could not be read (plain words), else None.
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: the drift check flagged this reading (it is then left out of the export's history).
    drifted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ExportAudienceState(Base):
    """Per export: identifiers held, when to read the audience next, and any drift."""

    __tablename__ = "export_audience_state"

    export_id: Mapped[int] = mapped_column(
        ForeignKey("exports.id", ondelete="CASCADE"), primary_key=True
    )
    #: identifiers confirmed in the audience, counted from the snapshot after the last change.
    identifiers_held: Mapped[int | None] = mapped_column(Integer, nullable=True)
    held_at: Mapped[datetime | None] = mapped_column(nullable=True)
    #: the last run that reached Snapchat (follow-up readings belong to it).
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: when the scheduler reads the audience next (None: nothing scheduled).
    next_reading_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)
    #: how many follow-up readings found the upload still processing.
    follow_ups: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: the figures of a detected drift (None: none); cleared by a reading that agrees.
    drift: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
