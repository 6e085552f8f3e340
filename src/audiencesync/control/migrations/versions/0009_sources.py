"""Sources: database and warehouse locations administrators own.

Linked datasets used to carry their own (encrypted) URL. Each becomes a source of its own,
named ``link-<dataset>``, holding the same ciphertext (the key is not needed to move it),
so every existing link keeps working. The source's location (host and database only) is
read from the dataset's redacted description, which then names the source instead. A name
longer than 100 characters, or one another dataset's source already took, ends with
``-<dataset id>`` instead. Audit entries of links made before quoted the URL's query
(``?password=...``): its values become ``***``.

It also creates ``audiencesync_install`` with one random id: a source connection that can
see that table has reached an audiencesync control database (profiles/linked.connect).

Revision ID: 0009_sources
Revises: 0008_alerts
Create Date: 2026-12-01
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from audiencesync.control.models import UTCDateTime

revision = "0009_sources"
down_revision = "0008_alerts"
branch_labels = None
depends_on = None


def _describe(source_text: str) -> tuple[str, str]:
    """(backend, location) from a dataset's ``<redacted url> table <t>`` description."""
    redacted = source_text.rsplit(" table ", 1)[0]
    try:
        url = make_url(redacted)
    except ArgumentError:
        return "unknown", "unknown"
    backend = url.drivername.split("+", 1)[0]
    if url.host:
        port = f":{url.port}" if url.port else ""
        return backend, f"{url.host}{port}/{url.database or ''}"
    return backend, url.database or ""


_QUERY_VALUE = re.compile(r"([?&][^=&\s]+=)[^&\s]*")


def _redact_query(value: Any) -> Any:
    """A URL's query values replaced by ``***`` (a legacy description kept them)."""
    if isinstance(value, str) and "://" in value:
        return _QUERY_VALUE.sub(r"\1***", value)
    return value


def _source_name(name: str, dataset_id: int, taken: set[str]) -> str:
    base = f"link-{name}"
    if len(base) <= 100 and base not in taken:
        return base
    suffix = f"-{dataset_id}"
    return base[: 100 - len(suffix)] + suffix


def _redact_audit(bind: sa.Connection) -> None:
    audit = sa.table(
        "audit_log",
        sa.column("id", sa.Integer),
        sa.column("before", sa.JSON),
        sa.column("after", sa.JSON),
    )
    for entry_id, before, after in bind.execute(
        sa.select(audit.c.id, audit.c.before, audit.c.after).order_by(audit.c.id)
    ).all():
        changed: dict[str, Any] = {}
        for column, state in (("before", before), ("after", after)):
            if isinstance(state, dict):
                redacted = {k: _redact_query(v) for k, v in state.items()}
                if redacted != state:
                    changed[column] = redacted
        if changed:
            bind.execute(audit.update().where(audit.c.id == entry_id).values(**changed))


def upgrade() -> None:
    install = op.create_table(
        "audiencesync_install",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    sources = op.create_table(
        "sources",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("backend", sa.String(40), nullable=False),
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("url_encrypted", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=True),
    )
    op.add_column("datasets", sa.Column("source_id", sa.Integer, nullable=True))
    bind = op.get_bind()
    datasets = sa.table(
        "datasets",
        sa.column("id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("kind", sa.String),
        sa.column("source", sa.Text),
        sa.column("link_url_encrypted", sa.Text),
        sa.column("source_id", sa.Integer),
    )
    rows = bind.execute(
        sa.select(datasets.c.id, datasets.c.name, datasets.c.source, datasets.c.link_url_encrypted)
        .where(datasets.c.kind == "link", datasets.c.link_url_encrypted.is_not(None))
        .order_by(datasets.c.id)
    ).all()
    now = datetime.now(UTC)
    bind.execute(install.insert().values(id=secrets.token_hex(16), created_at=now))
    taken: set[str] = set()
    for dataset_id, name, source_text, ciphertext in rows:
        backend, location = _describe(source_text or "")
        source_name = _source_name(name, dataset_id, taken)
        taken.add(source_name)
        source_id = bind.execute(
            sources.insert()
            .values(
                name=source_name,
                backend=backend,
                location=location,
                url_encrypted=ciphertext,
                created_at=now,
                created_by="migration 0009",
            )
            .returning(sources.c.id)
        ).scalar_one()
        table = (source_text or "").rsplit(" table ", 1)[-1]
        bind.execute(
            datasets.update()
            .where(datasets.c.id == dataset_id)
            .values(source_id=source_id, source=f"source {source_name} table {table}"[:10_000])
        )
    _redact_audit(bind)


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("source_id")
    op.drop_table("sources")
    op.drop_table("audiencesync_install")
