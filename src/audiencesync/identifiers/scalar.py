"""Normalize and hash one identifier, by Snap's rules (SNAPCHAT_API.md, "Normalizing").

This is the reference: :mod:`audiencesync.identifiers.batch` computes the same results
over Arrow arrays and its tests compare the two value by value.
"""

from __future__ import annotations

import hashlib
import re

from audiencesync.errors import UserInputError
from audiencesync.identifiers import phones
from audiencesync.identifiers.model import Normalized, Rejected, RejectReason
from audiencesync.types import IdentifierType

#: longer than this (after trimming) is no identifier: rejected as ``too_long``.
MAX_IDENTIFIER_CHARS = 512
#: what ``str.strip()`` removes within ASCII; the batch path trims exactly these.
ASCII_WHITESPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f "
ZERO_MAID = "00000000-0000-0000-0000-000000000000"

_HEX64 = re.compile(r"[0-9a-f]{64}")
# Python's \s on str is str.isspace(): the same set as ASCII_WHITESPACE within ASCII.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]*\.[^@\s]*")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NOT_DIGIT = re.compile(r"[^0-9]+")
_PLUS_FIRST = re.compile(r"[^0-9+]*\+")


def parse_kind(kind: IdentifierType | str) -> IdentifierType:
    """The identifier type named by ``kind`` ("email", "phone", "maid", any case).

    Raises :class:`UserInputError` for any other name.
    """
    try:
        return IdentifierType(str(kind).strip().lower())
    except ValueError:
        names = ", ".join(t.value for t in IdentifierType)
        raise UserInputError(f"unknown identifier type {kind!r}: use one of {names}.") from None


def sha256_hex(text: str) -> str:
    """SHA-256 of the UTF-8 text as 64 lowercase hex characters."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalize(
    kind: IdentifierType | str,
    value: str | None,
    *,
    default_country: str | None = None,
    raw: bool = False,
) -> Normalized | Rejected:
    """Normalize ``value`` as an identifier of ``kind`` and hash it, or say why not.

    A value of 64 hex characters is taken as already hashed (only lowercased) unless
    ``raw`` says the column holds raw values. ``default_country`` (ISO alpha-2, e.g.
    "GB") completes phone numbers written without a country code.

    Never raises for any ``value`` (any string, any length, lone surrogates, ``None``,
    even a non-string); raises :class:`UserInputError` only for an unknown ``kind`` or
    ``default_country``.
    """
    identifier_type = parse_kind(kind)
    region = phones.check_default_country(default_country) if default_country else None
    return _normalize(identifier_type, value, region, raw)


def hash_value(
    kind: IdentifierType | str,
    value: str | None,
    *,
    default_country: str | None = None,
    raw: bool = False,
) -> str | None:
    """The hash :func:`normalize` gives, or ``None`` when the value is rejected."""
    outcome = normalize(kind, value, default_country=default_country, raw=raw)
    return outcome.hash if isinstance(outcome, Normalized) else None


def _normalize(
    kind: IdentifierType, value: object, region: str | None, raw: bool
) -> Normalized | Rejected:
    """:func:`normalize` with its arguments already checked (the batch path calls this)."""
    if value is None:
        return Rejected(kind, RejectReason.EMPTY)
    if not isinstance(value, str) or not _is_utf8_encodable(value):
        return Rejected(kind, RejectReason.INVALID_TEXT)
    text = value.strip()
    if not text:
        return Rejected(kind, RejectReason.EMPTY)
    if len(text) > MAX_IDENTIFIER_CHARS:
        return Rejected(kind, RejectReason.TOO_LONG)
    lowered = text.lower()
    if not raw and _HEX64.fullmatch(lowered):
        return Normalized(kind, lowered, lowered, prehashed=True)
    if kind is IdentifierType.EMAIL:
        return _email(lowered)
    if kind is IdentifierType.PHONE:
        return _phone(text, region)
    return _maid(lowered)


def _is_utf8_encodable(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _accepted(kind: IdentifierType, normalized: str) -> Normalized:
    return Normalized(kind, normalized, sha256_hex(normalized))


def _email(lowered: str) -> Normalized | Rejected:
    # A sanity check, not RFC 5322: Snap matches whatever the advertiser holds.
    if _EMAIL.fullmatch(lowered) is None:
        return Rejected(IdentifierType.EMAIL, RejectReason.NOT_AN_EMAIL)
    return _accepted(IdentifierType.EMAIL, lowered)


def _maid(lowered: str) -> Normalized | Rejected:
    # The all-zero id is what a device reports when the user limits ad tracking.
    if _UUID.fullmatch(lowered) is None or lowered == ZERO_MAID:
        return Rejected(IdentifierType.MAID, RejectReason.MAID_INVALID)
    return _accepted(IdentifierType.MAID, lowered)


def _phone(text: str, region: str | None) -> Normalized | Rejected:
    digits = _NOT_DIGIT.sub("", text)
    if not digits:
        return Rejected(IdentifierType.PHONE, RejectReason.PHONE_INVALID)
    plus = _PLUS_FIRST.match(text) is not None
    if plus or digits.startswith("00"):
        e164 = phones.to_e164(digits if plus else digits[2:])
        reason = RejectReason.PHONE_INVALID
    elif region is None:
        # Digits only: taken as international when they make a possible number.
        e164 = phones.to_e164(digits)
        reason = RejectReason.PHONE_NO_COUNTRY_CODE
    else:
        e164 = _with_default_country(digits, region)
        reason = RejectReason.PHONE_INVALID
    if e164 is None:
        return Rejected(IdentifierType.PHONE, reason)
    return _accepted(IdentifierType.PHONE, e164)


def _with_default_country(digits: str, region: str) -> str | None:
    """Digits without '+' or '00' in a column whose numbers are from ``region``.

    Read as a national number of the region (by ``phonenumbers``), else as a whole
    number. When both readings work and differ (the digits start with the region's own
    calling code: "4930123456" in Germany, "9123456789" in India), the whole reading
    wins if it is a valid number, so already-normalized values keep their meaning.
    """
    national = phones.national_to_e164(digits, region)
    whole = phones.to_e164(digits)
    if national is None or whole is None or national == whole:
        return national or whole
    if digits.startswith(phones.calling_code(region)) and phones.is_valid(whole):
        return whole
    return national
