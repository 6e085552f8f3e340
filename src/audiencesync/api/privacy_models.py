"""Request and response models of the privacy API (``/privacy``).

No model carries an identifier or a hash: lists are shown by size, erasures by counts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from audiencesync import wording
from audiencesync.sync.privacy import ErasureView, SuppressionListView
from audiencesync.sync.retention import PrivacyReport, SweepResult


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SuppressionListPublic(_Out):
    name: str
    type: str
    all_exports: bool
    exports: list[str]
    origin: str = Field(description="where the values came from, in words (never a value)")
    hashed_input: bool
    size: int = Field(description="distinct identifiers (SHA-256 hashes) in the list")
    rejected: dict[str, int] = Field(description="values not usable, by reason")
    created_by: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: SuppressionListView) -> SuppressionListPublic:
        return cls(
            name=view.name, type=view.kind, all_exports=view.all_exports,
            exports=list(view.exports), origin=view.origin, hashed_input=view.hashed_input,
            size=view.size, rejected=view.rejected, created_by=view.created_by,
            created_at=view.created_at, updated_at=view.updated_at,
        )  # fmt: skip


class SuppressionListFromDataset(_In):
    name: str
    type: Literal["email", "phone", "maid"]
    dataset: str
    column: str
    hashed: bool = False
    all_exports: bool = False
    exports: list[str] = Field(default_factory=list)
    default_country: str | None = None


class ErasureRequest(_In):
    """The person's identifiers: used to compute hashes, never stored or returned."""

    emails: list[str] = Field(default_factory=list, max_length=100)
    phones: list[str] = Field(default_factory=list, max_length=100)
    maids: list[str] = Field(default_factory=list, max_length=100)
    default_country: str | None = Field(
        default=None, description="country of phones written without a country code"
    )


class ErasurePublic(_Out):
    id: int
    requested_by: str
    requested_at: datetime
    finished_at: datetime | None
    status: str = Field(
        description="recording, running, succeeded, partially_succeeded or failed "
        "(killed before its identifiers were recorded: erase again)"
    )
    identifiers: dict[str, int] = Field(description="identifiers given, by type (counts)")
    exports: dict[str, Any] = Field(
        description=(
            "per export: runs, status (done or pending), removed (DELETEs acknowledged, "
            "by type), held (of them, what its record of the audience held), message, "
            "fix (the action that helps, as kind, target and words; null when none)"
        )
    )

    @classmethod
    def of(cls, view: ErasureView) -> ErasurePublic:
        public = cls.model_validate(view, from_attributes=True)
        return public.model_copy(
            update={"exports": wording.erasure_exports(view.exports, cli=False)}
        )


class HeldDataPublic(_Out):
    category: str
    name: str
    location: str
    holds: str
    items: int | None
    bytes: int
    oldest: datetime | None
    newest: datetime | None


class PrivacyReportPublic(_Out):
    generated_at: datetime
    reject_sample_retention_days: int
    upload_retention_hours: float
    entries: list[HeldDataPublic]

    @classmethod
    def of(cls, report: PrivacyReport) -> PrivacyReportPublic:
        return cls(
            generated_at=report.generated_at,
            reject_sample_retention_days=report.reject_sample_retention_days,
            upload_retention_hours=report.upload_retention_hours,
            entries=[
                HeldDataPublic.model_validate(e, from_attributes=True) for e in report.entries
            ],
        )


class SweepPublic(_Out):
    samples_dropped: int
    uploads_removed: int
    versions_removed: int
    erasure_files_merged: int
    scratch_removed: int = Field(description="scratch folders of runs no longer under way")
    staging_removed: int = Field(description="staging of interrupted suppression-list uploads")

    @classmethod
    def of(cls, result: SweepResult) -> SweepPublic:
        return cls.model_validate(result, from_attributes=True)
