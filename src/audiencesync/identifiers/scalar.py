"""Normalize and hash one identifier, by Snap's rules (SNAPCHAT_API.md, "Normalizing").

This is the reference: :mod:`audiencesync.identifiers.batch` computes the same results
over Arrow arrays and its tests compare the two value by value.
"""

from __future__ import annotations

import hashlib
import re
import sys
import unicodedata
from functools import cache

from audiencesync.errors import UserInputError
from audiencesync.identifiers import phones
from audiencesync.identifiers.model import Normalized, Rejected, RejectReason
from audiencesync.types import IdentifierType

#: longer than this (after trimming) is no identifier: rejected as ``too_long``.
MAX_IDENTIFIER_CHARS = 512
#: what ``str.strip()`` removes within ASCII; the batch path trims exactly these.
ASCII_WHITESPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f "
ZERO_MAID = "00000000-0000-0000-0000-000000000000"
#: 64-hex values that are nobody's hash: SHA-256 of the empty string (what a system
#: that hashes a missing value sends) and 64 zeros (a placeholder). Never sent as hashes.
PLACEHOLDER_HASHES = frozenset({hashlib.sha256(b"").hexdigest(), "0" * 64})

_HEX64 = re.compile(r"[0-9a-f]{64}")
# Python's \s on str is str.isspace(): the same set as ASCII_WHITESPACE within ASCII.
# Angle brackets cannot stand unquoted in an address: left over, they are no address.
# The domain holds none of `";,()`: '"a@x.com"', '(a@x.com)', 'a@x.com;' are rejected.
# Control characters (category Cc: NUL, BEL, ESC, DEL, C1) are no part of an address.
_EMAIL = re.compile(
    r"[^@\s<>\x00-\x1f\x7f-\x9f]+@[^@\s<>\";,()\x00-\x1f\x7f-\x9f]*"
    r"\.[^@\s<>\";,()\x00-\x1f\x7f-\x9f]*"
)
_MAILTO = "mailto:"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_NOT_DIGIT = re.compile(r"[^0-9]+")
_PLUS_FIRST = re.compile(r"[^0-9+]*\+")
_DIGIT = re.compile(r"[0-9]")
#: what starts a phone extension once a digit has been seen (any case): "," and ";"
#: (a dialler's pause and wait, RFC 3966's ";ext="), "#", "x" (also of "ext",
#: "extension"), and the words "app" (German "Apparat"), "durchwahl", "poste" (French),
#: "anexo" (Spanish, Portuguese) and "int" (Italian "interno"); full-width forms too.
EXTENSION_MARKERS = (
    "x",
    "#",
    ",",
    ";",
    "ext",
    "extension",
    "app",
    "durchwahl",
    "poste",
    "anexo",
    "int",
)
_EXTENSION = re.compile(
    "[x#,;\uff58\uff03\uff0c\uff1b]|ext|app|durchwahl|poste|anexo|int", re.IGNORECASE
)
#: the international access prefixes read in front of a country code (SNAPCHAT_API.md:
#: "drop a leading 00 before the country code"). With a default country, its own
#: international prefix (phonenumbers' metadata: "0011" in Australia, "001" in Thailand,
#: "011" in North America) is read first. "011" is read without a default country only
#: after a '+' ("+011 44 ..."): without '+' it starts national numbers in Serbia
#: (Belgrade 011 ...), Leeds (0113), Delhi (011) and Sapporo (011).
DOUBLE_ZERO = "00"
NANP_EXIT = "011"


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
    as_written: str | None = None
    if not value.isascii():
        # Invisible format characters (BOM, zero-width, bidi marks) are never part of
        # an identifier: a BOM at the start of an export would change its hash. A phone's
        # Unicode digits are read as ASCII in the same pass (one translate, not two).
        if kind is IdentifierType.PHONE:
            as_written = value
            value = value.translate(_phone_characters())
        else:
            value = value.translate(_format_characters())
    text = value.strip()
    if not text:
        return Rejected(kind, RejectReason.EMPTY)
    if len(text) > MAX_IDENTIFIER_CHARS:
        return Rejected(kind, RejectReason.TOO_LONG)
    lowered = text.lower()
    if not raw and _HEX64.fullmatch(lowered) and _hex_as_written(as_written):
        if lowered in PLACEHOLDER_HASHES:
            return Rejected(kind, RejectReason.PLACEHOLDER_HASH)
        return Normalized(kind, lowered, lowered, prehashed=True)
    if kind is IdentifierType.EMAIL:
        return _email(lowered)
    if kind is IdentifierType.PHONE:
        return _phone(text, region)
    return _maid(lowered)


def _hex_as_written(as_written: str | None) -> bool:
    """Whether a phone whose digits were read as ASCII was 64 hex characters before
    (a hash is never written in other digits); ``None``: nothing was read."""
    if as_written is None:
        return True
    text = as_written.translate(_format_characters()).strip().lower()
    return _HEX64.fullmatch(text) is not None


def _is_utf8_encodable(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@cache
def _format_characters() -> dict[int, None]:
    """``str.translate`` table deleting every character of category Cf (~170)."""
    return {
        point: None
        for point in range(0x80, sys.maxunicode + 1)
        if unicodedata.category(chr(point)) == "Cf"
    }


#: what :func:`_phone_characters` writes for a numeral that is no decimal digit.
NOT_A_DIGIT = "\uffff"


@cache
def _phone_characters() -> dict[int, str | None]:
    """``str.translate`` table for phones: :func:`_format_characters` deleted, every
    Unicode decimal digit (category Nd) to its ASCII digit, the full-width plus to '+',
    and every other numeral (categories No and Nl: superscripts, fractions, circled and
    Roman numerals) to :data:`NOT_A_DIGIT`, which makes the phone invalid: dropping
    ``⁷`` from ``+44 ⁷911 123456`` would send another number."""
    table: dict[int, str | None] = dict(_format_characters())
    for point in range(0x80, sys.maxunicode + 1):
        category = unicodedata.category(chr(point))
        if category == "Nd":
            table[point] = str(unicodedata.decimal(chr(point)))
        elif category in ("No", "Nl"):
            table[point] = NOT_A_DIGIT
    table[0xFF0B] = "+"
    table[ord(NOT_A_DIGIT)] = NOT_A_DIGIT
    return table


def _accepted(kind: IdentifierType, normalized: str) -> Normalized:
    return Normalized(kind, normalized, sha256_hex(normalized))


def unwrap_email(lowered: str) -> str:
    """The address inside ``<...>`` and after ``mailto:`` (either, both, in either order),
    trimmed; anything else unchanged. ``mailto:`` is removed once at most: what is left
    of ``mailto:mailto:a@x.com`` still starts with it, and :func:`_email` rejects it."""
    stripped = lowered.startswith(_MAILTO)
    text = _strip_mailto(lowered)
    if len(text) >= 2 and text[0] == "<" and text[-1] == ">":
        inner = text[1:-1].strip()
        text = inner if stripped else _strip_mailto(inner)
    return text


def _strip_mailto(text: str) -> str:
    """``text`` after ``mailto:`` and without the URI's query ("?subject=..."), trimmed."""
    if not text.startswith(_MAILTO):
        return text
    return text[len(_MAILTO) :].split("?", 1)[0].strip()


def _email(lowered: str) -> Normalized | Rejected:
    # A sanity check, not RFC 5322: Snap matches whatever the advertiser holds.
    address = unwrap_email(lowered)
    if _EMAIL.fullmatch(address) is None or address.startswith(_MAILTO):
        return Rejected(IdentifierType.EMAIL, RejectReason.NOT_AN_EMAIL)
    return _accepted(IdentifierType.EMAIL, address)


def _maid(lowered: str) -> Normalized | Rejected:
    if _HEX32.fullmatch(lowered) is not None:
        # 32 hex digits without hyphens: the same id, written as Snap wants it.
        lowered = "-".join(
            (lowered[:8], lowered[8:12], lowered[12:16], lowered[16:20], lowered[20:])
        )
    # The all-zero id is what a device reports when the user limits ad tracking.
    if _UUID.fullmatch(lowered) is None or lowered == ZERO_MAID:
        return Rejected(IdentifierType.MAID, RejectReason.MAID_INVALID)
    return _accepted(IdentifierType.MAID, lowered)


def strip_extension(text: str) -> str:
    """``text`` up to its extension: the first of :data:`EXTENSION_MARKERS` after a
    digit ("ext. 123", "x123", "#123", ";ext=123", ", 12", "App. 12"), else ``text``."""
    first = _DIGIT.search(text)
    if first is None:
        return text
    marker = _EXTENSION.search(text, first.end())
    return text if marker is None else text[: marker.start()]


def _phone(text: str, region: str | None) -> Normalized | Rejected:
    # Unicode digits were read as ASCII digits by _normalize, other numerals marked.
    if NOT_A_DIGIT in text:
        return Rejected(IdentifierType.PHONE, RejectReason.PHONE_INVALID)
    text = strip_extension(text)
    digits = _NOT_DIGIT.sub("", text)
    if not digits:
        return Rejected(IdentifierType.PHONE, RejectReason.PHONE_INVALID)
    reason = RejectReason.PHONE_INVALID
    if _PLUS_FIRST.match(text) is not None:
        # "+44...", and "+0044...", "+01144..." as people write an access prefix too.
        for prefix in (DOUBLE_ZERO, NANP_EXIT):
            if digits.startswith(prefix):
                digits = digits[len(prefix) :]
                break
        e164 = phones.to_e164(digits)
    elif region is not None and (exit_e164 := region_exit_e164(digits, region)) is not None:
        # "0011 44 20 ..." in Australia: the country's own international prefix first.
        e164 = exit_e164
    elif digits.startswith(DOUBLE_ZERO):
        e164 = phones.to_e164(digits[len(DOUBLE_ZERO) :])
    elif region is None:
        # No country in the value and none given: never guessed, whatever the digits
        # (a bare "011..." included: see NANP_EXIT).
        e164 = None
        reason = RejectReason.PHONE_NO_COUNTRY_CODE
    else:
        e164 = _with_default_country(digits, region)
    if e164 is None:
        return Rejected(IdentifierType.PHONE, reason)
    return _accepted(IdentifierType.PHONE, e164)


def region_exit_e164(digits: str, region: str) -> str | None:
    """The whole number after ``region``'s own international prefix, if the digits start
    with one and what follows is a number (:func:`phones.to_e164`), else ``None``."""
    pattern = phones.international_prefix(region)
    found = pattern.match(digits) if pattern is not None else None
    if found is None or found.end() == 0:
        return None
    return phones.to_e164(digits[found.end() :])


def _with_default_country(digits: str, region: str) -> str | None:
    """Digits without '+' or '00' in a column whose numbers are from ``region``.

    Read as a national number of the region (by ``phonenumbers``), else, when the digits
    start with the region's own calling code, as a whole number of that code
    ("447911123456" in Britain). When both readings work and differ ("4930123456" in
    Germany, "9123456789" in India), the whole reading wins if it is a valid number, so
    already-normalized values keep their meaning. Never another country's number:
    "(917) 555-12345" in the US is no US number, and not read as an Indian one.
    """
    code = phones.calling_code(region)
    national = phones.national_to_e164(digits, region)
    if national is not None and not national.startswith(code):
        # phonenumbers read an international prefix: region_exit_e164 decided those.
        national = None
    whole = phones.to_e164(digits) if digits.startswith(code) else None
    if national is None or whole is None or national == whole:
        return national or whole
    if phones.is_valid(whole):
        return whole
    return national
