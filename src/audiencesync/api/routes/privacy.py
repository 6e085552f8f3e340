"""``/privacy``: suppression lists, erasures, the retention sweep and the privacy report.

Administrators only (the services check it). Nothing here answers with an identifier or
a hash.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile, status

from audiencesync.api.deps import Ctx, CurrentActor, RecordId
from audiencesync.api.privacy_models import (
    ErasurePublic,
    ErasureRequest,
    PrivacyReportPublic,
    SuppressionListFromDataset,
    SuppressionListPublic,
    SweepPublic,
)
from audiencesync.control.permissions import Actor
from audiencesync.sync import privacy, retention

router = APIRouter(prefix="/privacy", tags=["privacy"])


def _admin(actor: CurrentActor) -> Actor:
    """The caller, once the permission table allows them privacy (before the body is read,
    so a viewer gets 403, not a complaint about a missing field)."""
    privacy.require_admin(actor)
    return actor


Admin = Annotated[Actor, Depends(_admin)]


@router.get("/suppression-lists")
def list_lists(ctx: Ctx, actor: Admin) -> list[SuppressionListPublic]:
    """Every suppression list: name, type, size, the exports it applies to."""
    return [SuppressionListPublic.of(v) for v in privacy.list_lists(ctx, actor)]


@router.post("/suppression-lists/upload", status_code=status.HTTP_201_CREATED)
def create_from_upload(
    ctx: Ctx,
    actor: Admin,
    file: Annotated[UploadFile, File(description="CSV / text (one value a line) or Parquet")],
    name: Annotated[str, Form()],
    type: Annotated[str, Form(description="email, phone or maid")],
    column: Annotated[str | None, Form()] = None,
    hashed: Annotated[bool, Form()] = False,
    all_exports: Annotated[bool, Form()] = False,
    exports: Annotated[str, Form(description="export names, comma-separated")] = "",
    default_country: Annotated[str | None, Form()] = None,
) -> SuppressionListPublic:
    """A list from an uploaded file; the file itself is deleted once hashed."""
    view = privacy.create_list_from_upload(
        ctx, actor, name, file.file, file.filename or "upload", kind=type,
        column=column or None, hashed=hashed,
        exports=[e for e in exports.split(",") if e.strip()], all_exports=all_exports,
        default_country=default_country or None,
    )  # fmt: skip
    return SuppressionListPublic.of(view)


@router.post("/suppression-lists", status_code=status.HTTP_201_CREATED)
def create_from_dataset(
    ctx: Ctx, actor: Admin, body: SuppressionListFromDataset
) -> SuppressionListPublic:
    """A list from a dataset column of emails, phones or mobile ad ids."""
    view = privacy.create_list(
        ctx, actor, body.name, kind=body.type, dataset=body.dataset, column=body.column,
        hashed=body.hashed, exports=body.exports, all_exports=body.all_exports,
        default_country=body.default_country,
    )  # fmt: skip
    return SuppressionListPublic.of(view)


@router.get("/suppression-lists/{name}")
def get_list(ctx: Ctx, actor: Admin, name: str) -> SuppressionListPublic:
    return SuppressionListPublic.of(privacy.get_list(ctx, actor, name))


@router.delete("/suppression-lists/{name}", status_code=status.HTTP_204_NO_CONTENT)
def remove_list(ctx: Ctx, actor: Admin, name: str) -> None:
    privacy.remove_list(ctx, actor, name)


@router.post("/erasures", status_code=status.HTTP_201_CREATED)
def erase(ctx: Ctx, actor: Admin, body: ErasureRequest) -> ErasurePublic:
    """Erase a person from every audience now and keep them out of every later run."""
    view = privacy.erase(
        ctx, actor, emails=body.emails, phones=body.phones, maids=body.maids,
        default_country=body.default_country,
    )  # fmt: skip
    return ErasurePublic.of(view)


@router.get("/erasures")
def list_erasures(ctx: Ctx, actor: Admin) -> list[ErasurePublic]:
    return [ErasurePublic.of(v) for v in privacy.list_erasures(ctx, actor)]


@router.get("/erasures/{erasure_id}")
def get_erasure(ctx: Ctx, actor: Admin, erasure_id: RecordId) -> ErasurePublic:
    return ErasurePublic.of(privacy.get_erasure(ctx, actor, erasure_id))


@router.post("/erasures/{erasure_id}/resume")
def resume_erasure(ctx: Ctx, actor: Admin, erasure_id: RecordId) -> ErasurePublic:
    """Finish an interrupted erasure, or one that left exports pending."""
    return ErasurePublic.of(privacy.resume_erasure(ctx, actor, erasure_id))


@router.get("/report")
def report(ctx: Ctx, actor: Admin) -> PrivacyReportPublic:
    """What personal data is held where, with sizes and ages."""
    return PrivacyReportPublic.of(retention.report(ctx, actor))


@router.post("/sweep")
def sweep(ctx: Ctx, actor: Admin) -> SweepPublic:
    """Apply the retention settings now (the scheduler does it hourly)."""
    return SweepPublic.of(retention.sweep(ctx))
