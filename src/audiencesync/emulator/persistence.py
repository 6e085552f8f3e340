"""The emulator's state as a SQLite snapshot (``--state FILE``).

The whole state is written in one transaction on a clean shutdown and on
``POST /_emulator/save``, and read back on start. It is not written per request: a
killed emulator (SIGKILL) loses what changed since the last snapshot. Members go as one
BLOB per segment and schema (sorted 32-byte digests), so a million members cost 32 MB
and a fraction of a second.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson

from audiencesync.emulator.config import Schema
from audiencesync.emulator.store import Grant, Segment, Store

FORMAT_VERSION = 1
DIGEST_SIZE = 32

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS members (
    segment_id TEXT NOT NULL,
    schema TEXT NOT NULL,
    digests BLOB NOT NULL,
    PRIMARY KEY (segment_id, schema)
);
"""


class SnapshotError(Exception):
    """The state file cannot be read as an emulator snapshot."""


def save(store: Store, path: Path) -> None:
    """Write the whole state to ``path`` (created if missing), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    segments = [_segment_to_json(segment) for segment in store.iter_segments()]
    grants = {
        "access": {token: _grant_to_json(g) for token, g in store.access_tokens.items()},
        "refresh": {token: _grant_to_json(g) for token, g in store.refresh_tokens.items()},
    }
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.executescript(_SCHEMA_SQL)
        connection.execute("DELETE FROM meta")
        connection.execute("DELETE FROM members")
        connection.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [
                ("format_version", orjson.dumps(FORMAT_VERSION)),
                ("next_segment_id", orjson.dumps(store.next_segment_id)),
                ("segments", orjson.dumps(segments)),
                ("grants", orjson.dumps(grants)),
            ],
        )
        connection.executemany(
            "INSERT INTO members (segment_id, schema, digests) VALUES (?, ?, ?)",
            (
                (segment.id, str(schema), b"".join(sorted(digests)))
                for segment in store.iter_segments()
                for schema, digests in segment.members.items()
            ),
        )


def load(store: Store, path: Path) -> bool:
    """Replace the store's segments and tokens with the snapshot at ``path``; False when
    there is no file yet. Raises SnapshotError for a file that is not a snapshot."""
    if not path.exists():
        return False
    try:
        with closing(sqlite3.connect(path)) as connection:
            meta = {
                key: orjson.loads(value)
                for key, value in connection.execute("SELECT key, value FROM meta")
            }
            if meta.get("format_version") != FORMAT_VERSION:
                raise SnapshotError(f"{path} is not an emulator snapshot of format 1")
            segments = {item["id"]: _segment_from_json(item) for item in meta["segments"]}
            for segment_id, schema, blob in connection.execute(
                "SELECT segment_id, schema, digests FROM members"
            ):
                segments[segment_id].members[Schema(schema)] = {
                    blob[i : i + DIGEST_SIZE] for i in range(0, len(blob), DIGEST_SIZE)
                }
    except (sqlite3.Error, KeyError, ValueError, TypeError) as error:
        raise SnapshotError(f"{path} cannot be read as an emulator snapshot: {error}") from None
    store.segments = segments
    store.next_segment_id = int(meta["next_segment_id"])
    store.access_tokens = {t: _grant_from_json(g) for t, g in meta["grants"]["access"].items()}
    store.refresh_tokens = {t: _grant_from_json(g) for t, g in meta["grants"]["refresh"].items()}
    return True


def _segment_to_json(segment: Segment) -> dict[str, Any]:
    return {
        "id": segment.id,
        "ad_account_id": segment.ad_account_id,
        "organization_id": segment.organization_id,
        "name": segment.name,
        "description": segment.description,
        "source_type": segment.source_type,
        "retention_in_days": segment.retention_in_days,
        "created_at": segment.created_at,
        "updated_at": segment.updated_at,
        "uploaded": segment.uploaded,
        "processing_until": segment.processing_until,
        "matched": segment.matched,
    }


def _segment_from_json(item: dict[str, Any]) -> Segment:
    return Segment(**item)


def _grant_to_json(grant: Grant) -> dict[str, Any]:
    return {
        "user_id": grant.user_id,
        "client_id": grant.client_id,
        "scope": grant.scope,
        "expires_at": grant.expires_at,
        "revoked": grant.revoked,
    }


def _grant_from_json(item: dict[str, Any]) -> Grant:
    return Grant(**item)
