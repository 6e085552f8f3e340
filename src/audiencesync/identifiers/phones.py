"""Phone numbers to E.164 digits (no '+'), using the metadata of ``phonenumbers``.

Two ways in:

- :func:`to_e164` takes the digits of a number that carries its country code and
  returns them in canonical form, or ``None``. It is cheap (dictionary look-ups built
  once from the library's metadata), so the batch path can do the same in Arrow.
- :func:`national_to_e164` completes a national number with a default country; this is
  the only place that calls the (slower) ``phonenumbers`` parser.

Canonical form: the country calling code (1 to 3 digits; these codes are prefix-free),
then the national significant number with its trunk '0' dropped in countries that dial
one, of a length the country's metadata calls possible, 7 to 15 digits in all.
``to_e164`` is idempotent: what it returns, it returns unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

import phonenumbers
from phonenumbers import PhoneMetadata

from audiencesync.errors import UserInputError

#: E.164 allows at most 15 digits; fewer than 7 is no one's whole number.
MIN_E164_DIGITS = 7
MAX_E164_DIGITS = 15
#: digits beyond this cannot become a number even with an international prefix in front.
MAX_DIALLED_DIGITS = 20


@dataclass(frozen=True, slots=True)
class PhoneTables:
    """The slices of ``phonenumbers`` metadata the fast paths need."""

    #: country calling code -> possible lengths of its national significant numbers.
    possible_lengths: Mapping[str, frozenset[int]]
    #: codes of countries whose trunk prefix is '0' and whose numbers never start with 0.
    trunk_zero: frozenset[str]

    def codes_of_length(self, length: int) -> list[str]:
        return sorted(code for code in self.possible_lengths if len(code) == length)

    def possible_keys(self) -> list[str]:
        """``"<code>:<national length>"`` for every whole number of 7 to 15 digits."""
        return sorted(
            f"{code}:{length}"
            for code, lengths in self.possible_lengths.items()
            for length in lengths
            if MIN_E164_DIGITS <= len(code) + length <= MAX_E164_DIGITS
        )


@cache
def phone_tables() -> PhoneTables:
    """Built once, on first use, from the pinned ``phonenumbers`` metadata (~40 ms)."""
    possible: dict[str, frozenset[int]] = {}
    trunk_zero: set[str] = set()
    for calling_code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        metadata = [
            found
            for region in regions
            if (found := PhoneMetadata.metadata_for_region_or_calling_code(calling_code, region))
            is not None
        ]
        lengths = {
            length
            for m in metadata
            if m.general_desc is not None
            for length in m.general_desc.possible_length
            if length > 0
        }
        if not lengths:
            continue
        code = str(calling_code)
        possible[code] = frozenset(lengths)
        if all(m.national_prefix == "0" and not m.leading_zero_possible for m in metadata):
            trunk_zero.add(code)
    return PhoneTables(possible_lengths=possible, trunk_zero=frozenset(trunk_zero))


def to_e164(digits: str) -> str | None:
    """Canonical E.164 digits of a number given with its country code, else ``None``.

    ``digits`` holds ASCII digits only, country code first (no '+', no '00').
    """
    tables = phone_tables()
    for size in (1, 2, 3):
        code = digits[:size]
        lengths = tables.possible_lengths.get(code)
        if lengths is not None:
            break
    else:
        return None
    national = digits[size:]
    if code in tables.trunk_zero:
        if national.startswith("0"):
            national = national[1:]
        if national.startswith("0"):
            return None
    if len(national) not in lengths:
        return None
    if not MIN_E164_DIGITS <= size + len(national) <= MAX_E164_DIGITS:
        return None
    return code + national


def national_to_e164(digits: str, region: str) -> str | None:
    """A national number of ``region`` made whole by ``phonenumbers``, else ``None``.

    The library drops the national trunk prefix ('0' in most countries, '1' in North
    America, '8' in Russia...) and an international dialling prefix ('011' from the US).
    """
    if len(digits) > MAX_DIALLED_DIGITS:
        return None
    try:
        number = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException:
        return None
    national = phonenumbers.national_significant_number(number)
    return to_e164(f"{number.country_code}{national}")


def is_valid(e164: str) -> bool:
    """Whether ``phonenumbers`` knows canonical ``e164`` digits as an assigned number."""
    try:
        number = phonenumbers.parse(f"+{e164}", None)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(number))


def calling_code(region: str) -> str:
    """The country calling code of a checked region ("GB" -> "44")."""
    return str(phonenumbers.country_code_for_region(region))


def check_default_country(code: str) -> str:
    """The ISO 3166-1 alpha-2 code, upper-cased, if ``phonenumbers`` knows the country.

    Raises :class:`UserInputError` otherwise.
    """
    region = code.strip().upper()
    if len(region) == 2 and region.isascii() and phonenumbers.country_code_for_region(region):
        return region
    hint = " (the United Kingdom is GB)" if region == "UK" else ""
    raise UserInputError(
        f"unknown default country {code!r}{hint}: give an ISO 3166-1 alpha-2 code "
        "such as US, GB or DE."
    )
