"""Control-database models of connections, exports, runs and the refresh schedule."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
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


class ExportSegment(Base):
    __tablename__ = "export_segments"
    __table_args__ = (UniqueConstraint("export_id", "segment_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    export_id: Mapped[int] = mapped_column(ForeignKey("exports.id", ondelete="CASCADE"))
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id"))


class Run(Base):
    """One run of an export: what it did, how far it got, what went wrong."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    export_id: Mapped[int] = mapped_column(ForeignKey("exports.id", ondelete="CASCADE"), index=True)
    #: "schedule", "on_demand" or "api".
    trigger: Mapped[str] = mapped_column(String(20))
    requested_by: Mapped[str] = mapped_column(String(100))
    #: queued, running, succeeded, partially_succeeded, failed, cancelled, interrupted.
    status: Mapped[str] = mapped_column(String(30), index=True)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    full: Mapped[bool] = mapped_column(Boolean, default=False)
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
