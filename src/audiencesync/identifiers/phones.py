"""Phone numbers to E.164 digits (no '+'), using the metadata of ``phonenumbers``.

Two ways in:

- :func:`to_e164` takes the digits of a number that carries its country code and
  returns them in canonical form, or ``None``. It is cheap (dictionary look-ups built
  once from the library's metadata), so the batch path can do the same in Arrow.
- :func:`national_to_e164` completes a national number with a default country; this is
  the only place that calls the (slower) ``phonenumbers`` parser.

For the batch path, two tables restate these in terms Arrow kernels can apply to a whole
column: :func:`prefix_table` (``to_e164`` as look-ups on a number's first five digits)
and :func:`national_rules` (what the parser does with the digits of a national number, in
the countries whose dialling plan makes that a few fixed rules; see there).

Canonical form: the country calling code (1 to 3 digits; these codes are prefix-free),
then the national significant number with its trunk '0' dropped in countries that dial
one, of a length the country's metadata calls possible, 7 to 15 digits in all.
``to_e164`` is idempotent: what it returns, it returns unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np
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
    #: North America's numbers shorter than NXX-NXX-XXXX (Canada's 7-digit ``310XXXX``):
    #: the national number patterns, from the metadata, of the number types that have
    #: such lengths, joined with '|' (plain regexes RE2 reads too); ``None`` if none.
    nanp_short: str | None


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
    return PhoneTables(
        possible_lengths=possible, trunk_zero=frozenset(trunk_zero), nanp_short=_nanp_short()
    )


#: the number types of the metadata, whose patterns say which numbers are valid.
_NUMBER_TYPES = (
    "fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "personal_number",
    "voip", "pager", "uan", "voicemail",
)  # fmt: skip


def _nanp_short() -> str | None:
    """The patterns of +1 numbers of fewer than ``NANP_DIGITS`` digits that
    ``phonenumbers`` calls valid (in 9.0.43: Canada's ``310\\d{4}``, nothing else)."""
    patterns: list[str] = []
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(NANP_CODE), ()):
        metadata = PhoneMetadata.metadata_for_region(region)
        if metadata is None:
            continue
        for name in _NUMBER_TYPES:
            desc = getattr(metadata, name, None)
            if (
                desc is not None
                and desc.national_number_pattern
                and any(0 < length < NANP_DIGITS for length in desc.possible_length or ())
            ):
                patterns.append(f"(?:{desc.national_number_pattern})")
    return "|".join(sorted(set(patterns))) or None


@cache
def nanp_short_pattern() -> re.Pattern[str] | None:
    """:attr:`PhoneTables.nanp_short` compiled, or ``None``."""
    pattern = phone_tables().nanp_short
    return re.compile(pattern) if pattern else None


def nanp_short_valid(national: str) -> bool:
    """Whether a +1 national number shorter than NXX-NXX-XXXX is one ``phonenumbers``
    calls valid (``5551234`` is not; Canada's ``3101234`` is)."""
    pattern = nanp_short_pattern()
    return pattern is not None and pattern.fullmatch(national) is not None


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
    if code == NANP_CODE and len(national) == NANP_DIGITS and not _nanp_shape(national):
        return None
    if code == NANP_CODE and len(national) < NANP_DIGITS and not nanp_short_valid(national):
        return None
    if not MIN_E164_DIGITS <= size + len(national) <= MAX_E164_DIGITS:
        return None
    return code + national


#: North America's country code: its 10-digit numbers are NXX-NXX-XXXX, the area code
#: and the exchange each starting with 2 to 9; shorter ones must be valid in the metadata
#: (Canada's 7-digit 310-XXXX: see :func:`nanp_short_valid`).
NANP_CODE = "1"
NANP_DIGITS = 10


def _nanp_shape(national: str) -> bool:
    return national[:1] not in ("0", "1") and national[3:4] not in ("0", "1")


@cache
def international_prefix_pattern(region: str) -> str | None:
    """The regex of ``region``'s own international dialling prefix (phonenumbers'
    ``international_prefix``: "0011|..." for AU, "00[1-9]" for TH, "011" for US)."""
    metadata = PhoneMetadata.metadata_for_region(region)
    return (metadata.international_prefix or None) if metadata is not None else None


@cache
def international_prefix(region: str) -> re.Pattern[str] | None:
    """:func:`international_prefix_pattern` compiled, or ``None``."""
    pattern = international_prefix_pattern(region)
    return re.compile(pattern) if pattern else None


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


# --- the same rules as tables, for the batch path -------------------------------------

#: a code's possible national lengths sit at ``slot * LENGTH_SLOTS + length``.
LENGTH_SLOTS = 32
#: :func:`prefix_table` reads a number by its first this many digits.
PREFIX_DIGITS = 5


@dataclass(frozen=True, slots=True)
class PrefixTable:
    """:func:`to_e164` as look-ups, for digits of ``MIN_E164_DIGITS`` to
    ``MAX_E164_DIGITS + 1`` (a dropped trunk '0') characters.

    Index the lists by ``p``, the number's first ``PREFIX_DIGITS`` digits read as an
    integer. ``base[p]`` is ``None`` when no country code starts the digits (or the
    trunk '0' after the code is followed by another '0'); otherwise
    ``possible[base[p] + len(digits)]`` says whether the digits make a number, and
    ``cut[p]`` is the index of the trunk '0' to delete, or 0 when there is none.
    """

    base: list[int | None]
    cut: list[int]
    possible: list[bool]


@cache
def prefix_table() -> PrefixTable:
    """Built once from :func:`phone_tables`, with array arithmetic (~10 ms)."""
    tables = phone_tables()
    codes = sorted(tables.possible_lengths)
    # One more slot after the codes': North America's code before digits that are not
    # NXX-NXX (its lengths without the 10 of NXX-NXX-XXXX).
    possible = [False] * ((len(codes) + 1) * LENGTH_SLOTS)
    slot_of: dict[str, int] = {}
    for slot, code in enumerate(codes):
        slot_of[code] = slot
        for length in tables.possible_lengths[code]:
            if length < LENGTH_SLOTS and MIN_E164_DIGITS <= len(code) + length <= MAX_E164_DIGITS:
                possible[slot * LENGTH_SLOTS + length] = True
    misshapen_slot = len(codes)
    for length in tables.possible_lengths.get(NANP_CODE, frozenset()):
        if length != NANP_DIGITS and MIN_E164_DIGITS <= 1 + length <= MAX_E164_DIGITS:
            possible[misshapen_slot * LENGTH_SLOTS + length] = True

    prefixes = np.arange(10**PREFIX_DIGITS)
    slots = np.full(len(prefixes), -1)
    sizes = np.zeros(len(prefixes), np.int64)
    # Codes are prefix-free (and none starts with '0'): at most one starts the digits.
    for size in (1, 2, 3):
        lookup = np.full(10**size, -1)
        for code, slot in slot_of.items():
            if len(code) == size:
                lookup[int(code)] = slot
        found = lookup[prefixes // 10 ** (PREFIX_DIGITS - size)]
        take = (slots < 0) & (found >= 0)
        slots[take] = found[take]
        sizes[take] = size
    has_code = slots >= 0
    trunk = np.array([code in tables.trunk_zero for code in codes])
    after_code = (prefixes // 10 ** (PREFIX_DIGITS - 1 - sizes)) % 10
    then = (prefixes // 10 ** (PREFIX_DIGITS - 2 - sizes)) % 10
    drop = has_code & trunk[np.maximum(slots, 0)] & (after_code == 0)
    # A trunk '0' followed by another '0' is no number.
    unread = ~has_code | (drop & (then == 0))
    # North America: area code and exchange start with 2 to 9 (digits 1 and 4 of five);
    # digits that do not are read in the slot without NXX-NXX-XXXX's length.
    if NANP_CODE in slot_of:
        area = (prefixes // 10 ** (PREFIX_DIGITS - 2)) % 10
        exchange = prefixes % 10
        misshapen = (slots == slot_of[NANP_CODE]) & ((area <= 1) | (exchange <= 1))
        slots = np.where(misshapen, misshapen_slot, slots)
    # to_e164: the national number is what follows the code and the dropped '0'.
    base: list[int | None] = (slots * LENGTH_SLOTS - sizes - drop).tolist()
    for index in np.flatnonzero(unread).tolist():
        base[index] = None
    cut = np.where(drop & ~unread, sizes, 0).tolist()
    return PrefixTable(base=base, cut=cut, possible=possible)


#: Default countries whose national numbers the batch path completes with Arrow kernels
#: (the parser still decides the digits :class:`NationalRules` leaves undecided). Each
#: must pass :func:`build_national_rules`; the tests compare both paths for each.
VECTOR_REGIONS: frozenset[str] = frozenset(
    {
        # North America (trunk '1' = the country code)
        "US", "CA",
        # trunk '0'
        "GB", "IE", "FR", "DE", "NL", "BE", "CH", "AT", "SE", "FI", "AU", "NZ", "ZA",
        "IN", "AE", "SA", "TR", "PH", "MY", "RO",
        # no trunk prefix
        "ES", "IT", "PT", "DK", "NO", "PL", "GR", "CZ", "MX",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class NationalRules:
    """What ``phonenumbers.parse(digits, region)`` and :func:`national_to_e164` do, as
    a few rules on the digits of a national number (no '+', not starting '00').

    In order:

    1. Digits starting with a match of one of ``undecided`` (the region's international
       prefix, or a national prefix other than the trunk '0') are left to the parser.
    2. Digits starting with ``code``: the parser reads them as the code and a national
       number when their length is in ``code_reading_lengths`` (too long to be national)
       and what follows the code starts with no match of ``after_code`` (the national
       prefix for parsing); the result is then :func:`to_e164` of the digits, what the
       scalar path calls the whole reading. Digits shorter than ``MIN_E164_DIGITS`` and
       than every national length make no number (the parser's national number is never
       longer than the digits). Any others are left to the parser.
    3. Any other digits: when ``drops_zero``, one leading '0' (the trunk prefix) is
       dropped; the national number must have a length in ``national_lengths``; the
       result is ``code`` + the national number, or else the whole reading.

    Patterns are ``phonenumbers`` regexes, split at their top-level '|' so that each
    stands alone.
    """

    region: str
    code: str
    kind: Literal["trunk_zero", "no_trunk", "trunk_is_code"]
    drops_zero: bool
    national_lengths: frozenset[int]
    code_reading_lengths: frozenset[int]
    after_code: tuple[str, ...]
    undecided: tuple[str, ...]


def national_rules(region: str) -> NationalRules | None:
    """The rules of a checked region in :data:`VECTOR_REGIONS`, else ``None``."""
    return build_national_rules(region) if region in VECTOR_REGIONS else None


@cache
def build_national_rules(region: str) -> NationalRules | None:
    """:class:`NationalRules` for ``region``, or ``None`` when the parser's reading of its
    national numbers is not one of these exact cases (checked on the metadata):

    - ``trunk_zero``: the code is in :attr:`PhoneTables.trunk_zero` and the region's
      national prefix for parsing is absent or has a plain ``0`` among its top-level
      alternatives (the others are left undecided). Whether or not the parser strips
      that '0' (it keeps it when the rest is too short for the region), :func:`to_e164`
      drops it, so the result is the same.
    - ``no_trunk``: no national prefix for parsing, the code is not trunk-zero.
    - ``trunk_is_code``: the national prefix for parsing is the country code itself
      (North America: '1'), not trunk-zero: digits starting with it fall to rule 2.

    In all three, no prefix transform rule, and the region that owns the code parses
    national prefixes the same way (the parser switches to it once it reads a code).
    """
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.country_code is None or metadata.national_prefix_transform_rule:
        return None
    code = str(metadata.country_code)
    tables = phone_tables()
    owner = PhoneMetadata.metadata_for_region(
        phonenumbers.region_code_for_country_code(metadata.country_code)
    )
    parsing_prefix = metadata.national_prefix_for_parsing or None
    if (
        code not in tables.possible_lengths
        or owner is None
        or (owner.national_prefix_for_parsing or None) != parsing_prefix
    ):
        return None
    drops_zero = code in tables.trunk_zero
    alternatives = _top_level_alternatives(parsing_prefix) if parsing_prefix else []
    international = _top_level_alternatives(metadata.international_prefix or "")
    if alternatives is None or international is None:
        return None
    kind: Literal["trunk_zero", "no_trunk", "trunk_is_code"]
    if drops_zero and (parsing_prefix is None or "0" in alternatives):
        kind = "trunk_zero"
        others = [alternative for alternative in alternatives if alternative != "0"]
    elif not drops_zero and parsing_prefix is None:
        kind = "no_trunk"
        others = []
    elif not drops_zero and parsing_prefix == code:
        kind = "trunk_is_code"
        others = []
    else:
        return None
    # The scalar path reads digits starting '00' as international: no national row does.
    undecided = [
        pattern for pattern in [*international, *others] if pattern and not _double_zero(pattern)
    ]
    general = metadata.general_desc
    possible = list(general.possible_length) if general is not None else []
    local = set(general.possible_length_local_only) if general is not None else set()
    return NationalRules(
        region=region,
        code=code,
        kind=kind,
        drops_zero=drops_zero,
        national_lengths=frozenset(
            length
            for length in tables.possible_lengths[code]
            if MIN_E164_DIGITS <= len(code) + length <= MAX_E164_DIGITS
        ),
        code_reading_lengths=frozenset(
            length for length in range(MAX_DIALLED_DIGITS + 1) if _too_long(length, possible, local)
        ),
        after_code=tuple(alternatives),
        undecided=tuple(undecided),
    )


def _too_long(length: int, possible: list[int], local: set[int]) -> bool:
    """``phonenumbers``' length test (``_test_number_length``) of the region's general
    description says ``TOO_LONG``: not a local-only length, above the first and the last
    possible length (the lists are sorted)."""
    if not possible or length in local:
        return False
    return possible[0] < length and possible[-1] < length


def _top_level_alternatives(pattern: str) -> list[str] | None:
    """``pattern`` split at its top-level '|', or ``None`` if it is not plain enough."""
    alternatives: list[str] = []
    depth = 0
    in_class = False
    start = 0
    escaped = False
    for index, char in enumerate(pattern):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return None
        elif char == "|" and depth == 0:
            alternatives.append(pattern[start:index])
            start = index + 1
    if depth or in_class or escaped:
        return None
    alternatives.append(pattern[start:])
    return alternatives


def _double_zero(pattern: str) -> bool:
    """Whether whatever ``pattern`` (one alternative) matches begins with '00'."""
    return pattern.startswith("00") and pattern[2:3] not in ("?", "*", "+", "{")


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
        "such as US, GB or DE.",
        field="default_country",
    )
