"""Control-database models of privacy: suppression lists and erasures (docs/privacy.md).

Neither table holds an identifier or a hash: a list's hashes are Parquet files under
``<home>/privacy/`` (``sync.suppression``), and an erasure keeps only counts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from audiencesync.control.models import Base, utcnow


class SuppressionList(Base):
    """A named list of hashed identifiers never sent, and removed where held."""

    __tablename__ = "suppression_lists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    #: "email", "phone" or "maid": the type of every identifier in the list.
    kind: Mapped[str] = mapped_column(String(10))
    #: applies to every export (True) or to the exports in ``suppression_list_exports``.
    all_exports: Mapped[bool] = mapped_column(Boolean, default=True)
    #: the global list of erased identifiers (one, created by the first erasure).
    system: Mapped[bool] = mapped_column(Boolean, default=False)
    #: where the values came from, in words ("file customers-optout.csv", "dataset d
    #: column c"), never a value.
    origin: Mapped[str] = mapped_column(Text, default="")
    hashed_input: Mapped[bool] = mapped_column(Boolean, default=False)
    #: identifiers held (distinct hashes) and values that were not usable, by reason.
    size: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SuppressionListExport(Base):
    """An export a list applies to (lists that apply to all exports have no rows)."""

    __tablename__ = "suppression_list_exports"
    __table_args__ = (UniqueConstraint("list_id", "export_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("suppression_lists.id", ondelete="CASCADE"))
    export_id: Mapped[int] = mapped_column(ForeignKey("exports.id", ondelete="CASCADE"))


class Erasure(Base):
    """One erasure request: counts and per-export outcome, never the identifiers."""

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    requested_by: Mapped[str] = mapped_column(String(100))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    #: recording, running, succeeded, partially_succeeded (some exports still pending).
    status: Mapped[str] = mapped_column(String(30), default="recording")
    #: identifiers given, by type (counts only).
    identifiers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: per export name: {"runs", "status", "removed": {type: n}, "message"}.
    exports: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: the process working on it holds it until then (renewed after each export); an
    #: erasure ``running`` past it was interrupted and may be resumed.
    lease_until: Mapped[datetime | None] = mapped_column(nullable=True)
