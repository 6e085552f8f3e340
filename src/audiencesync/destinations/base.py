"""The engine-facing contract every destination implements.

The sync engine talks to an ad platform only through :class:`Destination`; a second
platform is a new folder under ``destinations/``, not a change to the engine. Every
method raises errors from :mod:`audiencesync.errors` (``DestinationError`` and its
subclasses), marked retryable or not, never a transport exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias

import pyarrow as pa

from audiencesync.types import IdentifierType

#: Already-hashed identifiers: 64 lowercase hex characters each. The engine passes Arrow
#: string arrays (no per-item Python objects); tests and scripts may pass lists.
Hashes: TypeAlias = Sequence[str] | pa.Array


@dataclass(frozen=True, slots=True)
class AdAccount:
    id: str
    name: str
    organization_id: str


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """Who a connection reaches: the platform user, organizations and ad accounts."""

    user_id: str
    user_display_name: str
    organization_ids: tuple[str, ...]
    ad_accounts: tuple[AdAccount, ...]
    #: organization id -> its name, as the platform reports them.
    organization_names: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class AudienceInfo:
    """An audience (Snapchat: a customer-list segment) as the platform reports it."""

    id: str
    name: str
    ad_account_id: str
    source_type: str
    retention_in_days: int | None
    approximate_number_users: int | None
    upload_status: str | None
    targetable_status: str | None
    status: str | None


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one acknowledged batch cost: identifiers accepted, requests and bytes sent."""

    identifiers: int
    requests: int
    bytes_sent: int


class Destination(Protocol):
    """An ad platform audience API, as the engine needs it."""

    #: the most identifiers one add/remove request may carry.
    max_batch_size: int

    def check_connection(self) -> AccountInfo:
        """Who the credentials belong to and what they reach; raises when they fail."""
        ...

    def describe_audience(self, audience_id: str) -> AudienceInfo:
        """The audience's current state; DestinationNotFoundError when it does not exist."""
        ...

    def create_audience(
        self, ad_account_id: str, name: str, *, description: str = "", retention_days: int = 9999
    ) -> AudienceInfo:
        """Create a customer-list audience in ``ad_account_id``."""
        ...

    def list_audiences(self, ad_account_id: str) -> list[AudienceInfo]:
        """Every audience of ``ad_account_id`` (all pages; customer lists and others)."""
        ...

    def add_batch(
        self, audience_id: str, identifier_type: IdentifierType, hashes: Hashes
    ) -> BatchResult:
        """Add already-hashed identifiers of one type (at most ``max_batch_size``)."""
        ...

    def remove_batch(
        self, audience_id: str, identifier_type: IdentifierType, hashes: Hashes
    ) -> BatchResult:
        """Remove already-hashed identifiers of one type (at most ``max_batch_size``)."""
        ...

    def clear(self, audience_id: str) -> None:
        """Remove every member of the audience."""
        ...

    def request_counters(self) -> dict[str, int]:
        """Requests sent again since the destination was opened: ``retries`` (after
        errors or dropped connections) and ``throttled`` (after a 429)."""
        ...
