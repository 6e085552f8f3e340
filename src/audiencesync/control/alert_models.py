"""Control-database models of alert channels, export alert choices and deliveries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from audiencesync.control import sync_models as _sync_models  # noqa: F401 - FK targets
from audiencesync.control.models import Base, utcnow


class AlertChannel(Base):
    """Where alerts go: a notification URL (apprise syntax), encrypted at rest."""

    __tablename__ = "alert_channels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    #: what may be shown of the URL: its scheme and (network) host.
    scheme: Mapped[str] = mapped_column(String(40))
    host: Mapped[str] = mapped_column(String(300), default="")
    #: the whole URL, encrypted with the home's secret key (it holds passwords and keys).
    url_ciphertext: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExportAlertSettings(Base):
    """Which events of an export are alerted, and the reject share that counts as high."""

    __tablename__ = "export_alert_settings"

    export_id: Mapped[int] = mapped_column(
        ForeignKey("exports.id", ondelete="CASCADE"), primary_key=True
    )
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    reject_share_threshold: Mapped[float] = mapped_column(Float, default=0.2)


class ExportAlertChannel(Base):
    """One channel an export's alerts go to."""

    __tablename__ = "export_alert_channels"
    __table_args__ = (UniqueConstraint("export_id", "channel_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    export_id: Mapped[int] = mapped_column(ForeignKey("exports.id", ondelete="CASCADE"), index=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("alert_channels.id", ondelete="CASCADE"))


class AlertDelivery(Base):
    """One alert to one channel: what was said, how many attempts, how it ended.

    ``dedupe_key`` names the occurrence (a run's event, a connection's transition): a
    channel gets each occurrence once, however many processes notice it.
    """

    __tablename__ = "alert_deliveries"
    __table_args__ = (UniqueConstraint("channel_id", "dedupe_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_id: Mapped[int | None] = mapped_column(
        ForeignKey("alert_channels.id", ondelete="SET NULL"), nullable=True, index=True
    )
    channel_name: Mapped[str] = mapped_column(String(100))
    event: Mapped[str] = mapped_column(String(40))
    export_name: Mapped[str] = mapped_column(String(100), default="")
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dedupe_key: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    #: pending, delivered or failed.
    status: Mapped[str] = mapped_column(String(20), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
