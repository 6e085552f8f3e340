"""What the Marketing API returns, parsed leniently into frozen dataclasses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Schema(StrEnum):
    """Identifier schemas Snap accepts in a users request (one per request)."""

    EMAIL_SHA256 = "EMAIL_SHA256"
    PHONE_SHA256 = "PHONE_SHA256"
    MOBILE_AD_ID_SHA256 = "MOBILE_AD_ID_SHA256"


def _str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    return str(value)


def _int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float | str):
        try:
            return int(float(value))
        except ValueError:
            return None
    return None


@dataclass(frozen=True, slots=True)
class SnapUser:
    """The Snapchat user a token belongs to (``GET /v1/me``)."""

    id: str
    display_name: str | None
    email: str | None
    organization_id: str | None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> SnapUser:
        return cls(
            id=_str(data, "id") or "",
            display_name=_str(data, "display_name"),
            email=_str(data, "email"),
            organization_id=_str(data, "organization_id"),
        )


@dataclass(frozen=True, slots=True)
class Organization:
    id: str
    name: str

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Organization:
        return cls(id=_str(data, "id") or "", name=_str(data, "name") or "")


@dataclass(frozen=True, slots=True)
class SnapAdAccount:
    id: str
    name: str
    organization_id: str
    status: str | None

    @classmethod
    def from_api(cls, data: Mapping[str, Any], organization_id: str = "") -> SnapAdAccount:
        return cls(
            id=_str(data, "id") or "",
            name=_str(data, "name") or "",
            organization_id=_str(data, "organization_id") or organization_id,
            status=_str(data, "status"),
        )


@dataclass(frozen=True, slots=True)
class Segment:
    """A customer-list segment (an audience)."""

    id: str
    ad_account_id: str
    name: str
    description: str
    source_type: str
    retention_in_days: int | None
    status: str | None
    upload_status: str | None
    targetable_status: str | None
    approximate_number_users: int | None
    organization_id: str | None
    created_at: str | None
    updated_at: str | None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Segment:
        return cls(
            id=_str(data, "id") or "",
            ad_account_id=_str(data, "ad_account_id") or "",
            name=_str(data, "name") or "",
            description=_str(data, "description") or "",
            source_type=_str(data, "source_type") or "",
            retention_in_days=_int(data, "retention_in_days"),
            status=_str(data, "status"),
            upload_status=_str(data, "upload_status"),
            targetable_status=_str(data, "targetable_status"),
            approximate_number_users=_int(data, "approximate_number_users"),
            organization_id=_str(data, "organization_id"),
            created_at=_str(data, "created_at"),
            updated_at=_str(data, "updated_at"),
        )


@dataclass(frozen=True, slots=True)
class UploadResult:
    """What an add or remove cost and what Snap acknowledged."""

    identifiers: int
    requests: int
    bytes_sent: int
    #: sum of ``number_uploaded_users`` over the responses (None when Snap omits it).
    number_uploaded_users: int | None
