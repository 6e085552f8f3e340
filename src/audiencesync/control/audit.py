"""The audit log: who changed what, when, with the before and after (never secrets)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from audiencesync.bounds import printable
from audiencesync.control.context import Context
from audiencesync.control.models import AuditEntry, Role
from audiencesync.control.permissions import Action, Actor, require
from audiencesync.control.sync_models import Connection

_SECRET_WORDS = ("password", "token", "secret", "ciphertext", "url_encrypted")


def _scrub(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {k: v for k, v in values.items() if not any(w in k.lower() for w in _SECRET_WORDS)}


def record(
    session: Session,
    actor: Actor | str,
    action: str,
    target: str,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Add an audit entry in ``session`` (it commits with the change it describes)."""
    session.add(
        AuditEntry(
            actor=actor if isinstance(actor, str) else actor.name,
            action=action,
            target=target,
            before=_scrub(before),
            after=_scrub(after),
        )
    )


@dataclass(frozen=True)
class AuditView:
    at: datetime
    actor: str
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def list_entries(
    ctx: Context, actor: Actor, *, limit: int = 50, target: str | None = None
) -> list[AuditView]:
    """The newest ``limit`` audit entries the actor may see, newest first.

    Connections are seen by non-administrators as name and type only: their entries come
    without details, and contributors see only those of connections shared with them.
    """
    require(actor, Action.READ)
    query = select(AuditEntry).order_by(AuditEntry.id.desc())
    if target is not None:
        query = query.where(AuditEntry.target == target)
    views: list[AuditView] = []
    with ctx.db.session() as session:
        shared = {
            name
            for (name,) in session.execute(
                select(Connection.name).where(Connection.shared_with_contributors.is_(True))
            )
        }
        # The server-side cursor is closed when the loop stops at ``limit`` (PostgreSQL
        # warned of a cursor left open otherwise).
        entries = session.scalars(query.execution_options(yield_per=500))
        for entry in entries:
            if len(views) >= limit:
                entries.close()
                break
            before, after = entry.before, entry.after
            if entry.target.startswith("connection:") and actor.role is not Role.ADMIN:
                name = entry.target.removeprefix("connection:")
                if actor.role is Role.CONTRIBUTOR and name not in shared:
                    continue
                before = after = None
            # Rows written before lone surrogates were refused cannot be encoded as they
            # are (the log answered 500 for everyone): show U+FFFD in their place.
            views.append(
                AuditView(
                    entry.at,
                    str(printable(entry.actor)),
                    str(printable(entry.action)),
                    str(printable(entry.target)),
                    _printable_dict(before),
                    _printable_dict(after),
                )
            )
    return views


def _printable_dict(values: dict[str, Any] | None) -> dict[str, Any] | None:
    shown = printable(values)
    return shown if isinstance(shown, dict) else None


#: what a contributor sees in place of a connection not shared with them.
_HIDDEN = "(an administrators' connection)"


def id_names(ctx: Context, actor: Actor) -> dict[str, dict[int, str]]:
    """The names behind the ids entries hold (``connection_id``, ``dataset_id``...).

    Contributors see an admin-only connection as "(an administrators' connection)".
    """
    require(actor, Action.READ)
    from audiencesync.control.models import Dataset, Segment

    with ctx.db.session() as session:
        connections = {
            row.id: (
                row.name
                if actor.role is not Role.CONTRIBUTOR or row.shared_with_contributors
                else _HIDDEN
            )
            for row in session.scalars(select(Connection))
        }
        # Rows unpack as (id, name); Result.tuples() is deprecated since SQLAlchemy 2.1.
        datasets = dict(session.execute(select(Dataset.id, Dataset.name)).all())
        segments = dict(session.execute(select(Segment.id, Segment.name)).all())
    return {"connection_id": connections, "dataset_id": datasets, "segment_id": segments}
