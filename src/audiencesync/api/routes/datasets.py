"""``/datasets``: profile datasets: import (upload or server path), link, refresh, sample."""

from __future__ import annotations

import errno
import re
import secrets
import shutil
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile, status
from starlette.datastructures import UploadFile as UploadedFile

from audiencesync.api.deps import Ctx, CurrentActor
from audiencesync.api.models import (
    ColumnPublic,
    DatasetImport,
    DatasetLink,
    DatasetPublic,
    Sample,
)
from audiencesync.control.context import Context
from audiencesync.control.permissions import Action, Actor, require
from audiencesync.errors import DiskFullError
from audiencesync.profiles import linked, store
from audiencesync.profiles.formats import FileFormat, parse_format
from audiencesync.profiles.store import DatasetView, OnDuplicateKey

router = APIRouter(prefix="/datasets", tags=["profiles"])

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
CHUNK = 1 << 20


def rows_of(table: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """An Arrow table as column names and JSON-able rows."""
    return list(table.column_names), list(table.to_pylist())


def save_upload(ctx: Context, actor: Actor, upload: UploadedFile) -> Path:
    """Keep an uploaded file under the home folder, where a refresh can read it again."""
    require(actor, Action.EDIT_DATASETS)
    name = _UNSAFE.sub("_", Path(upload.filename or "upload.csv").name).strip("._") or "upload"
    folder = ctx.home / store.UPLOADS / secrets.token_hex(8)
    folder.mkdir(parents=True, exist_ok=False)
    target = folder / name
    try:
        with target.open("wb") as handle:
            shutil.copyfileobj(upload.file, handle, CHUNK)
    except OSError as error:
        shutil.rmtree(folder, ignore_errors=True)
        if error.errno == errno.ENOSPC:
            raise DiskFullError(
                "the disk holding the home folder is full (no space left while saving the "
                "upload): free some space, then upload again; nothing was changed."
            ) from None
        raise
    return target


def import_upload(
    ctx: Context,
    actor: Actor,
    upload: UploadedFile,
    *,
    key: str,
    name: str | None,
    file_format: str | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
    on_duplicate_key: str = "error",
) -> DatasetView:
    """Import an uploaded file as a dataset; the file is removed again when the import fails.

    Unknown ``file_format`` or ``on_duplicate_key`` values are refused before anything is
    written (UserInputError).
    """
    require(actor, Action.EDIT_DATASETS)
    fmt = parse_format(file_format) if file_format else None
    policy = store.parse_on_duplicate_key(on_duplicate_key)
    path = save_upload(ctx, actor, upload)
    try:
        return store.import_file(
            ctx, actor, path, key=key, name=name or store.default_dataset_name(path),
            file_format=fmt, delimiter=delimiter or None, encoding=encoding or None,
            on_duplicate_key=policy,
        )  # fmt: skip
    except BaseException:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise


@router.get("")
def list_datasets(ctx: Ctx, actor: CurrentActor) -> list[DatasetPublic]:
    return [DatasetPublic.of(v) for v in store.list_datasets(ctx, actor)]


@router.post("", status_code=status.HTTP_201_CREATED)
def import_path(ctx: Ctx, actor: CurrentActor, body: DatasetImport) -> DatasetPublic:
    """Import a file from a folder listed in AUDIENCESYNC_IMPORT_FOLDERS (none by default:
    upload the file instead); replaces a previous version."""
    require(actor, Action.EDIT_DATASETS)
    store.check_import_folder(ctx, Path(body.path))
    view = store.import_file(
        ctx, actor, Path(body.path), key=body.key, name=body.name,
        file_format=FileFormat(body.format) if body.format else None,
        delimiter=body.delimiter, encoding=body.encoding,
        on_duplicate_key=OnDuplicateKey(body.on_duplicate_key),
    )  # fmt: skip
    return DatasetPublic.of(view)


@router.post("/upload", status_code=status.HTTP_201_CREATED)
def import_uploaded(
    ctx: Ctx,
    actor: CurrentActor,
    file: Annotated[UploadFile, File(description="CSV, Parquet or JSON")],
    key: Annotated[str, Form()],
    name: Annotated[str | None, Form()] = None,
    format: Annotated[str | None, Form()] = None,
    delimiter: Annotated[str | None, Form()] = None,
    encoding: Annotated[str | None, Form()] = None,
    on_duplicate_key: Annotated[str, Form()] = "error",
) -> DatasetPublic:
    """Import an uploaded file; it is kept under the home folder so refresh can re-read it."""
    view = import_upload(
        ctx, actor, file, key=key, name=name, file_format=format,
        delimiter=delimiter, encoding=encoding, on_duplicate_key=on_duplicate_key,
    )  # fmt: skip
    return DatasetPublic.of(view)


@router.post("/link", status_code=status.HTTP_201_CREATED)
def link_table(ctx: Ctx, actor: CurrentActor, body: DatasetLink) -> DatasetPublic:
    """Register a table of a source (GET /sources) as a dataset (always current)."""
    view = linked.link(ctx, actor, body.name, source=body.source, table=body.table, key=body.key)
    return DatasetPublic.of(view)


@router.get("/{name}")
def get_dataset(ctx: Ctx, actor: CurrentActor, name: str) -> DatasetPublic:
    return DatasetPublic.of(store.get_dataset(ctx, actor, name))


@router.get("/{name}/schema")
def get_schema(ctx: Ctx, actor: CurrentActor, name: str) -> list[ColumnPublic]:
    view = store.get_dataset(ctx, actor, name)
    return [ColumnPublic(name=c.name, type=c.type) for c in view.columns]


@router.get("/{name}/sample")
def get_sample(
    ctx: Ctx, actor: CurrentActor, name: str, limit: Annotated[int, Query(ge=0, le=1000)] = 20
) -> Sample:
    columns, rows = rows_of(store.sample(ctx, actor, name, limit=limit))
    return Sample(columns=columns, rows=rows)


@router.post("/{name}/refresh")
def refresh(ctx: Ctx, actor: CurrentActor, name: str) -> DatasetPublic:
    """Re-read the dataset from where it was imported (or linked) from; a file imported
    by path must still be in a folder listed in AUDIENCESYNC_IMPORT_FOLDERS."""
    return DatasetPublic.of(store.refresh(ctx, actor, name, check_folders=True))


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def remove(ctx: Ctx, actor: CurrentActor, name: str) -> None:
    store.remove(ctx, actor, name)
