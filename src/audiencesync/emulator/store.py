"""The emulated Snapchat's state: organizations, ad accounts, the user, OAuth grants,
segments and their members. No HTTP here: handlers call these methods and turn
:class:`SnapError` and :class:`OAuthError` into answers.

Everything runs on the server's one event-loop thread, so nothing here locks.
Members are stored per schema as sets of 32-byte SHA-256 digests, not hex strings: a
32-byte ``bytes`` takes about 40% less memory than a 64-character ``str``.
"""

from __future__ import annotations

import math
import secrets
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from audiencesync.emulator.config import (
    MAX_SEGMENT_NAME_LENGTH,
    MAX_SEGMENTS_PER_AD_ACCOUNT,
    TARGETABLE_MIN_USERS,
    Schema,
)

# Fixed seed ids, so a restarted emulator and a stored connection agree.
ORGANIZATION_ID = "0b8f4a4e-6a4f-4c1b-9d3e-2f1a7c5e9b01"
AD_ACCOUNT_ID = "5c3e1d2a-8b7f-4e6d-a1c9-3b2d4f6e8a02"
OTHER_AD_ACCOUNT_ID = "9e7d6c5b-4a3f-4e2d-b1c0-8f9e7d6c5b03"
USER_ID = "2d4f6a8c-1e3b-4d5f-8a7c-9e1b3d5f7a04"
USER_EMAIL = "marketer@example.com"
USER_DISPLAY_NAME = "Emulated Marketer"
FIRST_SEGMENT_ID = 4_100_000_000_000_001
CODE_TTL_SECONDS = 600.0
SCOPE = "snapchat-marketing-api"


class SnapError(Exception):
    """An Ads API refusal, answered in Snap's error shape."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def bad_request(message: str) -> SnapError:
    # Snap's code for a bad request is not documented: E1001 is the emulator's own.
    return SnapError(400, message, "E1001")


def forbidden(message: str) -> SnapError:
    return SnapError(403, message, "E3002")


def not_found(message: str) -> SnapError:
    return SnapError(404, message, "E3003")


class OAuthError(Exception):
    """A token-endpoint refusal, answered as RFC 6749 section 5.2."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


class Unauthorized(Exception):  # noqa: N818 (named after the HTTP answer)
    """No valid bearer token: missing, unknown, expired or revoked."""


@dataclass(slots=True)
class Organization:
    id: str
    name: str


@dataclass(slots=True)
class AdAccount:
    id: str
    name: str
    organization_id: str


@dataclass(slots=True)
class User:
    id: str
    email: str
    display_name: str
    organization_id: str
    ad_account_ids: frozenset[str]


@dataclass(slots=True)
class AuthCode:
    client_id: str
    redirect_uri: str
    user_id: str
    scope: str
    expires_at: float
    used: bool = False


@dataclass(slots=True)
class Grant:
    """An access or refresh token."""

    user_id: str
    client_id: str
    scope: str
    expires_at: float | None  # None: a refresh token, valid until used or revoked
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    scope: str


@dataclass(slots=True)
class Segment:
    id: str
    ad_account_id: str
    organization_id: str
    name: str
    description: str
    source_type: str
    retention_in_days: int
    created_at: float
    updated_at: float
    members: dict[Schema, set[bytes]] = field(default_factory=dict)
    uploaded: bool = False
    #: while not None, the upload is PROCESSING until this time.
    processing_until: float | None = None
    #: approximate_number_users computed when matching last completed.
    matched: int = 0

    def member_count(self) -> int:
        return sum(len(digests) for digests in self.members.values())


def _timestamp(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Store:
    """The emulated world, seeded with one organization, two ad accounts (the user can
    reach only the first) and one user."""

    def __init__(
        self, clock: Callable[[], float], *, processing_seconds: float, match_rate: float
    ) -> None:
        self.clock = clock
        # Matching is simulated lazily, when a segment is read (see settle).
        self.processing_seconds = processing_seconds
        self.match_rate = match_rate
        self.organizations: dict[str, Organization] = {
            ORGANIZATION_ID: Organization(ORGANIZATION_ID, "Emulated Organization")
        }
        self.ad_accounts: dict[str, AdAccount] = {
            AD_ACCOUNT_ID: AdAccount(AD_ACCOUNT_ID, "Emulated Ad Account", ORGANIZATION_ID),
            OTHER_AD_ACCOUNT_ID: AdAccount(
                OTHER_AD_ACCOUNT_ID, "Ad Account Without Access", ORGANIZATION_ID
            ),
        }
        self.users: dict[str, User] = {
            USER_ID: User(
                USER_ID,
                USER_EMAIL,
                USER_DISPLAY_NAME,
                ORGANIZATION_ID,
                frozenset({AD_ACCOUNT_ID}),
            )
        }
        self.segments: dict[str, Segment] = {}
        self.next_segment_id = FIRST_SEGMENT_ID
        self.codes: dict[str, AuthCode] = {}
        self.access_tokens: dict[str, Grant] = {}
        self.refresh_tokens: dict[str, Grant] = {}

    @property
    def user(self) -> User:
        """The one seeded user (the one who approves on the authorize page)."""
        return self.users[USER_ID]

    # OAuth -------------------------------------------------------------------------

    def issue_code(self, client_id: str, redirect_uri: str, scope: str) -> str:
        code = secrets.token_urlsafe(24)
        self.codes[code] = AuthCode(
            client_id, redirect_uri, USER_ID, scope, self.clock() + CODE_TTL_SECONDS
        )
        return code

    def exchange_code(
        self, code: str, client_id: str, redirect_uri: str, token_ttl: float
    ) -> TokenPair:
        """Tokens for an authorization code; the code works once."""
        grant = self.codes.get(code)
        if grant is None or grant.used:
            raise OAuthError("invalid_grant", "the authorization code is unknown or already used")
        if grant.expires_at <= self.clock():
            raise OAuthError("invalid_grant", "the authorization code has expired")
        if grant.client_id != client_id:
            raise OAuthError("invalid_grant", "the authorization code was issued to another client")
        if grant.redirect_uri != redirect_uri:
            raise OAuthError(
                "invalid_grant", "redirect_uri differs from the one of the authorization request"
            )
        grant.used = True
        return self._issue_tokens(grant.user_id, client_id, grant.scope, token_ttl)

    def refresh(self, refresh_token: str, client_id: str, token_ttl: float) -> TokenPair:
        """New tokens for a refresh token, which stops working (rotation)."""
        grant = self.refresh_tokens.get(refresh_token)
        if grant is None or grant.revoked:
            raise OAuthError("invalid_grant", "the refresh token is unknown, used or revoked")
        if grant.client_id != client_id:
            raise OAuthError("invalid_grant", "the refresh token was issued to another client")
        grant.revoked = True
        return self._issue_tokens(grant.user_id, client_id, grant.scope, token_ttl)

    def _issue_tokens(self, user_id: str, client_id: str, scope: str, ttl: float) -> TokenPair:
        access = secrets.token_urlsafe(32)
        refresh = secrets.token_urlsafe(32)
        self.access_tokens[access] = Grant(user_id, client_id, scope, self.clock() + ttl)
        self.refresh_tokens[refresh] = Grant(user_id, client_id, scope, None)
        # expires_in is whole seconds: never 0 for a token that lives at all (0.4 s -> 1).
        return TokenPair(access, refresh, max(1, math.ceil(ttl)), scope)

    def authenticate(self, authorization: str | None) -> User:
        """The user behind an ``Authorization: Bearer`` header; raises Unauthorized."""
        if not authorization:
            raise Unauthorized
        scheme, _, token = authorization.partition(" ")
        grant = self.access_tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if grant is None or grant.revoked:
            raise Unauthorized
        if grant.expires_at is not None and grant.expires_at <= self.clock():
            raise Unauthorized
        return self.users[grant.user_id]

    def revoke(self, *, access_token: str | None = None, refresh_token: str | None = None) -> int:
        """Revoke one token, or (neither given) every token of the user; how many."""
        if access_token is None and refresh_token is None:
            grants = [*self.access_tokens.values(), *self.refresh_tokens.values()]
        else:
            grants = [
                grant
                for grant in (
                    self.access_tokens.get(access_token or ""),
                    self.refresh_tokens.get(refresh_token or ""),
                )
                if grant is not None
            ]
        live = [grant for grant in grants if not grant.revoked]
        for grant in live:
            grant.revoked = True
        return len(live)

    def expire_access_tokens(self) -> int:
        """Make every live access token expire now; how many."""
        now = self.clock()
        live = [
            grant
            for grant in self.access_tokens.values()
            if not grant.revoked and grant.expires_at is not None and grant.expires_at > now
        ]
        for grant in live:
            grant.expires_at = now
        return len(live)

    # Organizations and ad accounts ---------------------------------------------------

    def organizations_of(self, user: User) -> list[Organization]:
        return [self.organizations[user.organization_id]]

    def ad_accounts_of(self, user: User, organization_id: str) -> list[AdAccount]:
        """The ad accounts of an organization the user can reach."""
        check_uuid(organization_id, "organization id")
        if organization_id not in self.organizations:
            raise not_found(f"organization {organization_id} does not exist")
        if organization_id != user.organization_id:
            raise forbidden(f"you are not a member of organization {organization_id}")
        return [
            account
            for account in self.ad_accounts.values()
            if account.organization_id == organization_id and account.id in user.ad_account_ids
        ]

    def reachable_ad_account(self, user: User, ad_account_id: str) -> AdAccount:
        check_uuid(ad_account_id, "ad account id")
        account = self.ad_accounts.get(ad_account_id)
        if account is None:
            raise not_found(f"ad account {ad_account_id} does not exist")
        if ad_account_id not in user.ad_account_ids:
            raise forbidden(
                f"you lack the Data Manager or Account Admin role on ad account {ad_account_id}"
            )
        return account

    # Segments ----------------------------------------------------------------------

    def reachable_segment(self, user: User, segment_id: str) -> Segment:
        if not segment_id.isdigit() or not segment_id.isascii():
            raise bad_request(f"segment id {segment_id!r} is not numeric")
        segment = self.segments.get(segment_id)
        if segment is None:
            raise not_found(f"segment {segment_id} does not exist")
        if segment.ad_account_id not in user.ad_account_ids:
            raise forbidden(
                f"you lack the Data Manager or Account Admin role on ad account "
                f"{segment.ad_account_id}, which holds segment {segment_id}"
            )
        return segment

    def create_segment(self, ad_account_id: str, fields: dict[str, Any]) -> Segment:
        """A new customer-list segment from validated request fields."""
        account = self.ad_accounts[ad_account_id]
        held = sum(1 for s in self.segments.values() if s.ad_account_id == ad_account_id)
        if held >= MAX_SEGMENTS_PER_AD_ACCOUNT:
            raise bad_request(
                f"ad account {ad_account_id} already holds {MAX_SEGMENTS_PER_AD_ACCOUNT:,} "
                "customer-list segments, the most allowed: delete one first"
            )
        now = self.clock()
        segment_id = str(self.next_segment_id)
        self.next_segment_id += 1
        segment = Segment(
            id=segment_id,
            ad_account_id=ad_account_id,
            organization_id=account.organization_id,
            name=fields["name"],
            description=fields.get("description", ""),
            source_type=fields["source_type"],
            retention_in_days=fields["retention_in_days"],
            created_at=now,
            updated_at=now,
        )
        self.segments[segment_id] = segment
        return segment

    def segments_page(
        self, ad_account_id: str, after: int | None, limit: int
    ) -> tuple[list[Segment], bool]:
        """Up to ``limit`` segments of an ad account with ids above ``after``, and
        whether more follow."""
        chosen = sorted(
            (
                s
                for s in self.segments.values()
                if s.ad_account_id == ad_account_id and (after is None or int(s.id) > after)
            ),
            key=lambda s: int(s.id),
        )
        return chosen[:limit], len(chosen) > limit

    def delete_segment(self, segment: Segment) -> None:
        del self.segments[segment.id]

    def add_members(self, segment: Segment, schema: Schema, digests: Iterable[bytes]) -> None:
        segment.members.setdefault(schema, set()).update(digests)
        self._uploaded(segment)

    def remove_members(self, segment: Segment, schema: Schema, digests: Iterable[bytes]) -> None:
        members = segment.members.get(schema)
        if members is not None:
            members.difference_update(digests)
        self._uploaded(segment)

    def remove_all_members(self, segment: Segment) -> None:
        segment.members.clear()
        self._uploaded(segment)

    def _uploaded(self, segment: Segment) -> None:
        now = self.clock()
        segment.uploaded = True
        segment.updated_at = now
        segment.processing_until = now + self.processing_seconds

    def settle(self, segment: Segment, *, force: bool = False) -> None:
        """Complete the segment's matching if its processing time is over (or ``force``)."""
        until = segment.processing_until
        if until is not None and (force or until <= self.clock()):
            segment.processing_until = None
            segment.matched = round(segment.member_count() * self.match_rate)

    def segment_json(self, segment: Segment) -> dict[str, Any]:
        """The segment as the Ads API shows it."""
        self.settle(segment)
        if not segment.uploaded:
            upload_status, targetable = "NO_UPLOAD", "NOT_READY"
        elif segment.processing_until is not None:
            upload_status, targetable = "PROCESSING", "NOT_READY"
        else:
            upload_status = "COMPLETE"
            targetable = "READY" if segment.matched >= TARGETABLE_MIN_USERS else "TOO_FEW_USERS"
        return {
            "id": segment.id,
            "updated_at": _timestamp(segment.updated_at),
            "created_at": _timestamp(segment.created_at),
            "name": segment.name,
            "ad_account_id": segment.ad_account_id,
            "description": segment.description,
            "status": "ACTIVE",
            "source_type": segment.source_type,
            "retention_in_days": segment.retention_in_days,
            "approximate_number_users": segment.matched,
            "upload_status": upload_status,
            "targetable_status": targetable,
            "organization_id": segment.organization_id,
        }

    def iter_segments(self) -> Iterator[Segment]:
        return iter(sorted(self.segments.values(), key=lambda s: int(s.id)))


def check_uuid(value: str, what: str) -> None:
    try:
        uuid.UUID(value)
    except ValueError:
        raise bad_request(f"{what} {value!r} is not a UUID") from None


def validate_segment_fields(item: object, *, ad_account_id: str, creating: bool) -> dict[str, Any]:
    """The writable fields of one ``segments[]`` element, checked; raises SnapError."""
    if not isinstance(item, dict):
        raise bad_request("each element of segments must be an object")
    fields: dict[str, Any] = {}
    required = ("name", "source_type", "retention_in_days", "ad_account_id") if creating else ()
    missing = [name for name in required if name not in item]
    if missing:
        raise bad_request(f"segment field(s) missing: {', '.join(missing)}")
    if "ad_account_id" in item and item["ad_account_id"] != ad_account_id:
        raise bad_request("segment ad_account_id differs from the ad account in the path")
    if "name" in item:
        name = item["name"]
        if not isinstance(name, str) or not name.strip():
            raise bad_request("segment name must be a non-empty string")
        if len(name) > MAX_SEGMENT_NAME_LENGTH:
            raise bad_request(f"segment name is longer than {MAX_SEGMENT_NAME_LENGTH} characters")
        fields["name"] = name
    if "description" in item:
        description = item["description"]
        if not isinstance(description, str):
            raise bad_request("segment description must be a string")
        fields["description"] = description
    if "source_type" in item:
        if item["source_type"] != "FIRST_PARTY":
            raise bad_request("source_type must be FIRST_PARTY for a customer list")
        fields["source_type"] = "FIRST_PARTY"
    if "retention_in_days" in item:
        days = item["retention_in_days"]
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 9999:
            raise bad_request("retention_in_days must be an integer from 1 to 9999 (lifetime)")
        fields["retention_in_days"] = days
    return fields
