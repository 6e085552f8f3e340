"""Phone numbers of every country the pinned ``phonenumbers`` knows."""

from __future__ import annotations

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from audiencesync.identifiers import Normalized, check_default_country, normalize, phones
from audiencesync.identifiers.phones import phone_tables, to_e164
from audiencesync.types import IdentifierType

PHONE = IdentifierType.PHONE
TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE)


def examples() -> list[tuple[str, phonenumbers.PhoneNumber]]:
    found = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for number_type in TYPES:
            number = phonenumbers.example_number_for_type(region, number_type)
            if number is not None:
                found.append((region, number))
    return found


EXAMPLES = examples()


def e164_digits(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, PhoneNumberFormat.E164).lstrip("+")


def test_country_codes_are_prefix_free() -> None:
    codes = list(phone_tables().possible_lengths)
    assert len(codes) > 200
    for code in codes:
        assert not any(other != code and other.startswith(code) for other in codes)


def test_trunk_zero_countries() -> None:
    trunk_zero = phone_tables().trunk_zero
    assert {"44", "33", "49", "61"} <= trunk_zero
    assert not {"1", "7", "39", "34"} & trunk_zero


def test_every_example_number_in_international_format() -> None:
    wrong = []
    for region, number in EXAMPLES:
        written = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
        outcome = normalize(PHONE, written)
        if not isinstance(outcome, Normalized) or outcome.value != e164_digits(number):
            wrong.append((region, written, outcome))
    assert wrong == []


def test_every_example_number_in_national_format_with_its_country() -> None:
    wrong = []
    for region, number in EXAMPLES:
        written = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        outcome = normalize(PHONE, written, default_country=region)
        if not isinstance(outcome, Normalized) or outcome.value != e164_digits(number):
            wrong.append((region, written, outcome))
    assert wrong == []


def test_to_e164_is_idempotent_on_examples() -> None:
    for _, number in EXAMPLES:
        digits = e164_digits(number)
        assert to_e164(digits) == digits


def test_check_default_country() -> None:
    assert check_default_country(" gb ") == "GB"
    assert check_default_country("US") == "US"


def test_prefix_table_reads_each_prefix_as_to_e164_would() -> None:
    """The array-built table against a plain reading of every five-digit prefix."""
    tables = phones.phone_tables()
    slot_of = {code: slot for slot, code in enumerate(sorted(tables.possible_lengths))}
    table = phones.prefix_table()
    for prefix in range(10**phones.PREFIX_DIGITS):
        head = f"{prefix:0{phones.PREFIX_DIGITS}d}"
        start = next((head[:size] for size in (1, 2, 3) if head[:size] in slot_of), "")
        drop = start in tables.trunk_zero and head[len(start)] == "0"
        if not start or (drop and head[len(start) + 1] == "0"):
            assert (table.base[prefix], table.cut[prefix]) == (None, 0), head
            continue
        slot = slot_of[start]
        if start == "1" and (head[1] in "01" or head[4] in "01"):
            slot = len(slot_of)  # North America, not NXX-NXX: a slot of its own
        base = slot * phones.LENGTH_SLOTS - len(start) - drop
        assert (table.base[prefix], table.cut[prefix]) == (base, len(start) if drop else 0), head
