"""Imported datasets and uploads in a bucket of a real S3-compatible server (moto): an
upload is kept in the bucket, so a process with another home folder refreshes it; a
removed dataset leaves the bucket with its upload."""

from __future__ import annotations

from pathlib import Path

from audiencesync.control.context import Context
from audiencesync.control.models import Role
from audiencesync.profiles import store
from audiencesync.settings import Settings
from tests.conftest import _initialised, make_actors

CSV = "customer_id,email\n1,ann@example.com\n2,bob@example.org\n"


def test_an_upload_is_kept_in_the_bucket_and_refreshed_from_another_home(
    tmp_path: Path, s3_settings: dict[str, str]
) -> None:
    first = Settings(home=tmp_path / "first", secret_key=None, user=None, **s3_settings)
    ctx = _initialised(first)
    # The second home shares the first's control database (SQLite here) and the bucket.
    second = first.model_copy(
        update={"home": tmp_path / "second", "database_url": first.control_database_url}
    )
    other = Context.open(second)
    try:
        admin = make_actors(ctx)[Role.ADMIN]
        upload = ctx.home / store.UPLOADS / "abc123" / "people.csv"
        upload.parent.mkdir(parents=True)
        upload.write_text(CSV)
        view = store.import_file(ctx, admin, upload, key="customer_id", name="people")
        kept = "uploads/abc123/people.csv"
        assert view.source == ctx.storage.location(kept)
        assert view.source.startswith("s3://")
        assert ctx.storage.read_bytes(kept).decode() == CSV
        assert not upload.parent.exists(), "the local copy is gone once it is in the bucket"
        data = store.parquet_key(ctx, "people")
        assert ctx.storage.exists(data)
        assert ctx.storage.local_path(data) is None
        assert not (ctx.home / "profiles").exists() or not any((ctx.home / "profiles").iterdir())

        refreshed = store.refresh(other, admin, "people")
        assert refreshed.source == view.source
        assert store.parquet_key(ctx, "people") != data  # a new version, in the bucket
        assert store.sample(other, admin, "people").column("email").to_pylist() == [
            "ann@example.com",
            "bob@example.org",
        ]
        store.remove(other, admin, "people")
        assert not ctx.storage.exists(kept)
        assert ctx.storage.listing("profiles/people") == []
    finally:
        other.close()
        ctx.close()
