"""Who may do what. Enforced in the services, so no interface can bypass it.

The table (README, "Roles"): administrators do everything; contributors manage profile
datasets and segments and, on connections shared with contributors, exports; viewers
read everything but secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from audiencesync.control.models import Role
from audiencesync.errors import PermissionDeniedError


@dataclass(frozen=True, slots=True)
class Actor:
    """The user an operation is done for."""

    id: int
    name: str
    role: Role
    #: the IANA zone the user reads times in (web pages); None: UTC.
    time_zone: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


class Action(StrEnum):
    """An action the permission table has a row for; the value reads in a sentence."""

    MANAGE_USERS = "manage users"
    MANAGE_SCHEDULE = "change the refresh schedule"
    MANAGE_CONNECTIONS = "create, change or remove connections"
    MANAGE_SOURCES = "add or remove data sources"
    EDIT_DATASETS = "import, refresh or remove profile datasets"
    EDIT_SEGMENTS = "create, change or remove segments"
    EDIT_EXPORTS = "create, change, remove or run exports"
    MANAGE_PRIVACY = "manage suppression lists, erasures and retention"
    READ = "read"


_ALLOWED: dict[Action, frozenset[Role]] = {
    Action.MANAGE_USERS: frozenset({Role.ADMIN}),
    Action.MANAGE_SCHEDULE: frozenset({Role.ADMIN}),
    Action.MANAGE_CONNECTIONS: frozenset({Role.ADMIN}),
    Action.MANAGE_SOURCES: frozenset({Role.ADMIN}),
    Action.EDIT_DATASETS: frozenset({Role.ADMIN, Role.CONTRIBUTOR}),
    Action.EDIT_SEGMENTS: frozenset({Role.ADMIN, Role.CONTRIBUTOR}),
    Action.EDIT_EXPORTS: frozenset({Role.ADMIN, Role.CONTRIBUTOR}),
    Action.MANAGE_PRIVACY: frozenset({Role.ADMIN}),
    Action.READ: frozenset({Role.ADMIN, Role.CONTRIBUTOR, Role.VIEWER}),
}


def allowed(actor: Actor, action: Action) -> bool:
    """Whether ``actor``'s role may do ``action`` at all."""
    return actor.role in _ALLOWED[action]


def require(actor: Actor, action: Action) -> None:
    """Raise PermissionDeniedError unless ``actor``'s role may do ``action``."""
    if not allowed(actor, action):
        needed = " or ".join(sorted(r.value for r in _ALLOWED[action]))
        raise PermissionDeniedError(
            f"{actor.name} is a {actor.role.value} and cannot {action.value}; "
            f"ask a user with the {needed} role."
        )
