"""What normalizing one identifier gives: a hash to send, or a reason not to send it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from audiencesync.types import IdentifierType


class RejectReason(StrEnum):
    """Why a value is not sent. Codes are stable: run records and reports store them."""

    #: nothing left after trimming whitespace (or no value at all).
    EMPTY = "empty"
    #: longer than any identifier can be (see ``MAX_IDENTIFIER_CHARS``).
    TOO_LONG = "too_long"
    #: not text Snapchat could hash: a lone surrogate, undecodable bytes, not a string.
    INVALID_TEXT = "invalid_text"
    #: not one '@' between a local part and a domain with a dot, or whitespace inside.
    NOT_AN_EMAIL = "not_an_email"
    #: a national number and no default country to complete it.
    PHONE_NO_COUNTRY_CODE = "phone_no_country_code"
    #: no possible E.164 number: unknown country code, or a wrong number of digits.
    PHONE_INVALID = "phone_invalid"
    #: not a UUID (8-4-4-4-12 hex digits), or the all-zero id of limited ad tracking.
    MAID_INVALID = "maid_invalid"
    #: 64 hex characters that are nobody's hash: SHA-256 of the empty string (a missing
    #: value hashed upstream) or 64 zeros (a placeholder).
    PLACEHOLDER_HASH = "placeholder_hash"


#: the closed set, in a fixed order: a reason's index is its code in batch internals.
REASONS: tuple[RejectReason, ...] = tuple(RejectReason)


@dataclass(frozen=True, slots=True)
class Normalized:
    """An accepted identifier: its normalized text and the SHA-256 to send.

    ``value`` is the normalized text that was hashed; for a pre-hashed input it is the
    lowercased hash itself and ``prehashed`` is true.
    """

    kind: IdentifierType
    value: str
    hash: str
    prehashed: bool = False


@dataclass(frozen=True, slots=True)
class Rejected:
    """A value that is not sent, and why."""

    kind: IdentifierType
    reason: RejectReason
