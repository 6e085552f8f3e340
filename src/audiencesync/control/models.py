"""SQLAlchemy models of the control database. Migrations live in ``migrations/``."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, String, Text, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware (SQLite drops tz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the control database")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Role(StrEnum):
    """What a user may do; see the permission table in docs/permissions.md."""

    ADMIN = "admin"
    CONTRIBUTOR = "contributor"
    VIEWER = "viewer"


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: UTCDateTime}  # noqa: RUF012


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: the IANA zone web pages show this user times in; None: UTC.
    time_zone: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(String(300))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class Dataset(Base):
    """A profile dataset: Parquet under the home folder, or a linked external table."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    key_column: Mapped[str] = mapped_column(String(300))
    #: "file" (imported into Parquet) or "link" (a table in another engine).
    kind: Mapped[str] = mapped_column(String(20), default="file")
    #: where the data came from: a file path, or a redacted URL + table for a link.
    source: Mapped[str] = mapped_column(Text)
    #: import options (format, delimiter, encoding, on_duplicate_key) or link options.
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Parquet file of the current version, relative to the home folder (file datasets).
    data_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    row_count: Mapped[int] = mapped_column(Integer, default=0)
    #: list of {"name": column, "type": duckdb type} in file order.
    columns: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    imported_at: Mapped[datetime | None] = mapped_column(nullable=True)
    imported_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    #: connection URL of a linked table, encrypted (it may hold a password). Links made
    #: before sources existed; migration 0009 moved each into a source of its own.
    link_url_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: the source (sources.id) a linked table is read through; a source some dataset
    #: links through cannot be removed (migration 0015).
    source_id: Mapped[int | None] = mapped_column(
        ForeignKey("sources.id", ondelete="RESTRICT", name="fk_datasets_source_id"),
        nullable=True,
    )


class Source(Base):
    """A database or warehouse administrators made linkable (profiles/sources.py)."""

    __tablename__ = "sources"
    #: SQLite never gives a removed source's id to a new one (a link that looked its
    #: source up by name just before the removal must not land on another source).
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 (SQLAlchemy reads it)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    #: the engine: postgresql, sqlite, duckdb, ...
    backend: Mapped[str] = mapped_column(String(40))
    #: what may be shown: host[:port]/database, or a file path; never user or password.
    location: Mapped[str] = mapped_column(Text)
    #: the full URL (it may hold a password), encrypted with the home's key.
    url_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(100), nullable=True)


class Secret(Base):
    """An encrypted secret (a token, a URL with a password), keyed by its owner row."""

    __tablename__ = "secrets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), unique=True)
    ciphertext: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Segment(Base):
    """A named rule over one profile dataset (see segments/rules.py for the algebra)."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="RESTRICT"), index=True
    )
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: the rule tree as JSON (``segments.rules.dump_rules``).
    rules: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(100))


class SegmentReference(Base):
    """``segment`` uses ``referenced`` in its rules; a used segment cannot be removed."""

    __tablename__ = "segment_references"

    segment_id: Mapped[int] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True
    )
    referenced_id: Mapped[int] = mapped_column(
        ForeignKey("segments.id", ondelete="RESTRICT"), primary_key=True, index=True
    )


class SegmentEvaluation(Base):
    """One evaluation of a segment (count, preview, explain, stream): size over time."""

    __tablename__ = "segment_evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    segment_id: Mapped[int] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(default=utcnow)
    #: "count", "preview", "explain" or "stream".
    kind: Mapped[str] = mapped_column(String(20))
    size: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str | None] = mapped_column(String(100), nullable=True)


class Unification(Base):
    """Several source datasets matched into one person per profile (profiles/unify).

    Its output is the dataset ``dataset_id`` (kind ``unified``, same name); the files of
    the current version (link table, keys, history) are under ``run_path``.
    """

    __tablename__ = "unifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    dataset_id: Mapped[int | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="SET NULL"), nullable=True
    )
    #: the rules document as JSON (``unify.rules.dump_unification_rules``).
    rules: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: folder of the current version's link table, keys and history (relative to home).
    run_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: the next unified id never given (ids are never reused).
    next_id: Mapped[int] = mapped_column(BigInteger, default=1)
    version: Mapped[int] = mapped_column(Integer, default=0)
    #: the figures of the latest refresh (docs/unification.md, "Figures").
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(100))
    refreshed_at: Mapped[datetime | None] = mapped_column(nullable=True)


class UnificationSource(Base):
    """A source dataset of a unification, in priority order; a used dataset stays."""

    __tablename__ = "unification_sources"

    unification_id: Mapped[int] = mapped_column(
        ForeignKey("unifications.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="RESTRICT"), index=True
    )
    key_column: Mapped[str] = mapped_column(String(300))
