"""SnapchatDestination: the engine's protocol mapped onto the client."""

from __future__ import annotations

import hashlib

import orjson
import pytest

from audiencesync.destinations.base import AccountInfo, AdAccount, BatchResult
from audiencesync.destinations.snapchat import SnapchatDestination
from audiencesync.errors import DestinationNotFoundError
from audiencesync.http.clock import ManualClock
from audiencesync.types import IdentifierType

from .fakesnap import AD_ACCOUNT, ORG, FakeSnap


@pytest.fixture
def snap() -> FakeSnap:
    return FakeSnap(ManualClock())


@pytest.fixture
def destination(snap: FakeSnap) -> SnapchatDestination:
    return SnapchatDestination(snap.client(requests_per_second=1e6))


def test_check_connection_lists_user_organizations_and_accounts(
    destination: SnapchatDestination,
) -> None:
    assert destination.check_connection() == AccountInfo(
        user_id="u1",
        user_display_name="Ada",
        organization_ids=(ORG,),
        ad_accounts=(AdAccount(id=AD_ACCOUNT, name="Main", organization_id=ORG),),
        organization_names=((ORG, "Org"),),
    )


def test_create_and_describe_audience(destination: SnapchatDestination, snap: FakeSnap) -> None:
    created = destination.create_audience(AD_ACCOUNT, "Buyers", retention_days=90)
    assert (created.name, created.source_type, created.retention_in_days) == (
        "Buyers",
        "FIRST_PARTY",
        90,
    )
    assert destination.describe_audience(created.id) == created
    with pytest.raises(DestinationNotFoundError):
        destination.describe_audience("4242")


@pytest.mark.parametrize(
    ("identifier_type", "schema"),
    [
        (IdentifierType.EMAIL, "EMAIL_SHA256"),
        (IdentifierType.PHONE, "PHONE_SHA256"),
        (IdentifierType.MAID, "MOBILE_AD_ID_SHA256"),
    ],
)
def test_batches_map_identifier_types_to_schemas(
    destination: SnapchatDestination, snap: FakeSnap, identifier_type: IdentifierType, schema: str
) -> None:
    segment = snap.add_segment()
    ids = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(7)]
    added = destination.add_batch(segment, identifier_type, ids)
    body = snap.api_requests("POST")[-1].content
    assert orjson.loads(body)["users"][0]["schema"] == [schema]
    assert added == BatchResult(identifiers=7, requests=1, bytes_sent=len(body))
    removed = destination.remove_batch(segment, identifier_type, ids[:3])
    assert removed.identifiers == 3
    assert snap.members[(segment, schema)] == set(ids[3:])
    destination.clear(segment)
    assert snap.members[(segment, schema)] == set()


def test_max_batch_size_follows_the_client(snap: FakeSnap) -> None:
    assert SnapchatDestination(snap.client()).max_batch_size == 100_000
    assert SnapchatDestination(snap.client(max_ids_per_request=10)).max_batch_size == 10
