"""Snapchat behind the engine-facing :class:`audiencesync.destinations.base.Destination`."""

from __future__ import annotations

from audiencesync.destinations.base import (
    AccountInfo,
    AdAccount,
    AudienceInfo,
    BatchResult,
    Destination,
    Hashes,
)
from audiencesync.destinations.snapchat.client import MAX_IDS_PER_REQUEST, SnapchatClient
from audiencesync.destinations.snapchat.models import Schema, Segment
from audiencesync.types import IdentifierType

#: The schema each identifier type is sent under.
SCHEMAS: dict[IdentifierType, Schema] = {
    IdentifierType.EMAIL: Schema.EMAIL_SHA256,
    IdentifierType.PHONE: Schema.PHONE_SHA256,
    IdentifierType.MAID: Schema.MOBILE_AD_ID_SHA256,
}


class SnapchatDestination:
    """Customer-list segments of one Snapchat connection, as the sync engine sees them."""

    max_batch_size: int = MAX_IDS_PER_REQUEST

    def __init__(self, client: SnapchatClient) -> None:
        self.client = client
        self.max_batch_size = client.max_ids_per_request

    def check_connection(self) -> AccountInfo:
        """The user, organizations and ad accounts the connection reaches."""
        user = self.client.me()
        organizations = self.client.organizations()
        accounts = tuple(
            AdAccount(id=account.id, name=account.name, organization_id=account.organization_id)
            for organization in organizations
            for account in self.client.ad_accounts(organization.id)
        )
        return AccountInfo(
            user_id=user.id,
            user_display_name=user.display_name or user.id,
            organization_ids=tuple(organization.id for organization in organizations),
            ad_accounts=accounts,
            organization_names=tuple(
                (organization.id, organization.name or organization.id)
                for organization in organizations
            ),
        )

    def describe_audience(self, audience_id: str) -> AudienceInfo:
        return _audience(self.client.get_segment(audience_id))

    def create_audience(
        self, ad_account_id: str, name: str, *, description: str = "", retention_days: int = 9999
    ) -> AudienceInfo:
        segment = self.client.create_segment(
            ad_account_id,
            name,
            description=description,
            retention_in_days=retention_days,
            source_type="FIRST_PARTY",
        )
        return _audience(segment)

    def list_audiences(self, ad_account_id: str) -> list[AudienceInfo]:
        return [_audience(segment) for segment in self.client.list_segments(ad_account_id)]

    def add_batch(
        self, audience_id: str, identifier_type: IdentifierType, hashes: Hashes
    ) -> BatchResult:
        result = self.client.add_users(audience_id, SCHEMAS[identifier_type], hashes)
        return BatchResult(result.identifiers, result.requests, result.bytes_sent)

    def remove_batch(
        self, audience_id: str, identifier_type: IdentifierType, hashes: Hashes
    ) -> BatchResult:
        result = self.client.remove_users(audience_id, SCHEMAS[identifier_type], hashes)
        return BatchResult(result.identifiers, result.requests, result.bytes_sent)

    def clear(self, audience_id: str) -> None:
        self.client.remove_all_users(audience_id)

    def request_counters(self) -> dict[str, int]:
        return self.client.request_counters()

    def close(self) -> None:
        self.client.close()


def _audience(segment: Segment) -> AudienceInfo:
    return AudienceInfo(
        id=segment.id,
        name=segment.name,
        ad_account_id=segment.ad_account_id,
        source_type=segment.source_type,
        retention_in_days=segment.retention_in_days,
        approximate_number_users=segment.approximate_number_users,
        upload_status=segment.upload_status,
        targetable_status=segment.targetable_status,
        status=segment.status,
    )


def _conforms(destination: SnapchatDestination) -> Destination:
    # mypy proves here that SnapchatDestination satisfies the engine's protocol.
    return destination
