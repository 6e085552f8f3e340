"""Profile sources cannot read audiencesync's own home: its key file and control database."""

from __future__ import annotations

from pathlib import Path

import pytest

from audiencesync.control.context import Context
from audiencesync.control.models import Role
from audiencesync.control.permissions import Actor
from audiencesync.errors import PermissionDeniedError, UserInputError
from audiencesync.profiles import linked, store


@pytest.mark.parametrize("inside", ["secret.key", "control.db", "profiles/x.csv"])
def test_files_inside_the_home_cannot_be_imported(
    sqlite_ctx: Context, sqlite_actors: dict[Role, Actor], inside: str
) -> None:
    sqlite_ctx.secrets.encrypt("x")  # the key file exists
    target = sqlite_ctx.home / inside
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.write_text("id\n1\n")
    with pytest.raises(UserInputError, match="inside audiencesync's home folder") as raised:
        store.import_file(sqlite_ctx, sqlite_actors[Role.CONTRIBUTOR], target, key="x")
    key = (sqlite_ctx.home / "secret.key").read_text().strip()
    assert key not in raised.value.message


def test_uploads_inside_the_home_are_imported_and_removed_with_their_dataset(
    sqlite_ctx: Context, sqlite_actors: dict[Role, Actor]
) -> None:
    folder = sqlite_ctx.home / "uploads" / "abc123"
    folder.mkdir(parents=True)
    upload = folder / "people.csv"
    upload.write_text("id,email\n1,a@example.com\n")
    admin = sqlite_actors[Role.ADMIN]
    store.import_file(sqlite_ctx, admin, upload, key="id", name="people")
    store.remove(sqlite_ctx, admin, "people")
    assert not folder.exists()  # the uploaded emails leave the disk with the dataset


def test_links_to_the_home_or_to_local_files_are_refused(
    sqlite_ctx: Context, sqlite_actors: dict[Role, Actor], tmp_path: Path
) -> None:
    control = f"sqlite:///{sqlite_ctx.home / 'control.db'}"
    with pytest.raises(PermissionDeniedError, match="cannot add or remove data sources"):
        linked.link_url(
            sqlite_ctx, sqlite_actors[Role.CONTRIBUTOR], "u", url=control, table="users", key="id"
        )
    with pytest.raises(PermissionDeniedError, match="audiencesync's own control database"):
        linked.link_url(
            sqlite_ctx, sqlite_actors[Role.ADMIN], "u", url=control, table="users", key="id"
        )
