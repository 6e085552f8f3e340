"""The audit log: who changed what, when, with the before and after (never secrets)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from audiencesync.control.context import Context
from audiencesync.control.models import AuditEntry
from audiencesync.control.permissions import Action, Actor, require

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
    """The newest ``limit`` audit entries, newest first, optionally for one target."""
    require(actor, Action.READ)
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if target is not None:
        query = query.where(AuditEntry.target == target)
    with ctx.db.session() as session:
        return [
            AuditView(e.at, e.actor, e.action, e.target, e.before, e.after)
            for e in session.scalars(query)
        ]
