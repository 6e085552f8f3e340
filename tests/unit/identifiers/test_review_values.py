"""Values that used to be sent although they can never match (review of issue 12).

- With a default country, digits that are no number of it were read as another
  country's whole number: "(917) 555-12345" with US became India's 91755512345.
- 7-digit "+1" numbers were accepted although only Canada's 310-XXXX are valid.
- Emails with control characters, a second "mailto:", the SHA-256 of nothing and 64
  zeros taken as hashes, and a superscript digit dropped from a phone.

Every case is checked on the scalar path and on the batch path (hash_batch and the rows
prepare_batch hands to DuckDB's HASH_SQL).
"""

from __future__ import annotations

import hashlib
import random

import duckdb
import phonenumbers
import pytest

from audiencesync.identifiers import (
    HASH_SQL,
    Normalized,
    Rejected,
    RejectReason,
    hash_batch,
    normalize,
    prepare_batch,
)
from audiencesync.types import IdentifierType

EMAIL, PHONE, MAID = IdentifierType.EMAIL, IdentifierType.PHONE, IdentifierType.MAID
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def both_paths(
    kind: IdentifierType, values: list[str], country: str | None = None, raw: bool = False
) -> list[Normalized | Rejected]:
    """The scalar outcomes, after checking that both batch APIs give the same."""
    expected = [normalize(kind, value, default_country=country, raw=raw) for value in values]
    batch = hash_batch(kind, values, default_country=country, raw=raw)
    assert batch.hashes.to_pylist() == [
        e.hash if isinstance(e, Normalized) else None for e in expected
    ]
    assert batch.reasons.to_pylist() == [
        e.reason.value if isinstance(e, Rejected) else None for e in expected
    ]
    prepared = prepare_batch(kind, values, default_country=country, raw=raw)
    rows = prepared.rows  # noqa: F841 - read by name in the query below
    with duckdb.connect() as con:
        hashed = [h for (h,) in con.execute(f"SELECT {HASH_SQL} FROM rows").fetchall()]
    assert hashed == [e.hash for e in expected if isinstance(e, Normalized)]
    return expected


def one(kind: IdentifierType, value: str, country: str | None = None) -> Normalized | Rejected:
    return both_paths(kind, [value], country)[0]


# --- 1. a default country never yields another country's number -----------------------


def _with_extra_digit(rng: random.Random, digits: str) -> str:
    at = rng.randint(0, len(digits))
    return digits[:at] + str(rng.randint(0, 9)) + digits[at:]


def _typed_numbers(region: str, count: int) -> list[str]:
    """``count`` national numbers of ``region`` with one extra digit typed somewhere,
    written as people write them (digits only, spaces, dashes, parentheses)."""
    rng = random.Random(f"typo-{region}")
    written = []
    for _ in range(count):
        if region == "US":
            digits = f"{rng.randint(201, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
        else:
            digits = f"07{rng.randint(0, 999_999_999):09d}"
        digits = _with_extra_digit(rng, digits)
        style = rng.randrange(3)
        if style == 1:
            digits = f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
        elif style == 2:
            digits = f"{digits[:5]} {digits[5:]}"
        written.append(digits)
    return written


@pytest.mark.parametrize(("region", "code"), [("US", "1"), ("GB", "44")])
def test_a_mistyped_national_number_is_never_another_country(region: str, code: str) -> None:
    written = _typed_numbers(region, 10_000)
    outcomes = both_paths(PHONE, written, region)
    accepted = [o for o in outcomes if isinstance(o, Normalized)]
    # Every accepted value is a number of the default country's calling code (one
    # extra digit in front of a US number can be its trunk '1', so some are read)...
    foreign = [
        o.value
        for o in accepted
        if phonenumbers.parse("+" + o.value, None).country_code != int(code)
    ]
    assert foreign == []
    # ...and every other value is rejected as invalid, not dropped silently.
    rejected = [o for o in outcomes if isinstance(o, Rejected)]
    assert {o.reason for o in rejected} == {RejectReason.PHONE_INVALID}
    assert len(accepted) + len(rejected) == 10_000
    assert len(rejected) > 5_000  # most typos make no number of the country at all


@pytest.mark.parametrize(
    ("written", "country", "was_read_as"),
    [
        ("(917) 555-12345", "US", "91755512345"),  # India
        ("(620) 293-93430", "US", "6229393430"),  # Indonesia
        ("07911 1234567", "GB", None),
        ("447911123456", "US", "447911123456"),  # a British number without its '+'
        ("4930 1234567", "FR", "49301234567"),  # a German number without its '+'
    ],
)
def test_digits_that_are_no_number_of_the_default_country_are_invalid(
    written: str, country: str, was_read_as: str | None
) -> None:
    assert one(PHONE, written, country) == Rejected(PHONE, RejectReason.PHONE_INVALID)


@pytest.mark.parametrize(
    ("written", "country", "normalized"),
    [
        # The country's own calling code, too long to be national: its whole number.
        ("447911123456", "GB", "447911123456"),
        ("1 415 555 0123", "US", "14155550123"),
        ("14155550123", "CA", "14155550123"),
        ("4930123456", "DE", "4930123456"),
        # A French number without its '+' is, by its length, a possible German national
        # number: read as Germany's (rule 4 asks "possible", not "valid"), never France's.
        ("33 1 23 45 67 89", "DE", "4933123456789"),
        # With an international mark, any country (the mark carries it).
        ("+33 1 23 45 67 89", "DE", "33123456789"),
        ("0033 1 23 45 67 89", "DE", "33123456789"),
        ("011 44 20 7946 0958", "US", "442079460958"),
    ],
)
def test_the_default_countrys_own_numbers_and_marked_numbers_stay_read(
    written: str, country: str, normalized: str
) -> None:
    outcome = one(PHONE, written, country)
    assert isinstance(outcome, Normalized)
    assert outcome.value == normalized


# --- 2. 7-digit +1 numbers only where phonenumbers calls them valid -------------------


@pytest.mark.parametrize(
    ("written", "country"),
    [("555-1234", "US"), ("555-1234", "CA"), ("+1 555 1234", None), ("9175551", "US"),
     ("+1 311 1234", None), ("00 1 555 1234", None)],
)  # fmt: skip
def test_seven_digit_north_american_numbers_are_invalid(written: str, country: str | None) -> None:
    assert one(PHONE, written, country) == Rejected(PHONE, RejectReason.PHONE_INVALID)
    assert not phonenumbers.is_valid_number(
        phonenumbers.parse("+1" + "".join(c for c in written if c.isdigit())[-7:], None)
    )


@pytest.mark.parametrize(
    ("written", "country"), [("+1 310 1234", None), ("310-9999", "CA"), ("310 1234", "US")]
)
def test_canadas_seven_digit_numbers_stay_read(written: str, country: str | None) -> None:
    outcome = one(PHONE, written, country)
    assert isinstance(outcome, Normalized)
    assert phonenumbers.is_valid_number(phonenumbers.parse("+" + outcome.value, None))
    assert outcome.value.startswith("1310")


def test_short_plus_one_numbers_follow_phonenumbers_validity() -> None:
    """Every 7-digit +1 national number is accepted exactly when phonenumbers calls
    it valid (a sample of 2,000, plus all of Canada's 310 block edges)."""
    rng = random.Random(7)
    nationals = [f"{rng.randint(0, 9_999_999):07d}" for _ in range(2_000)]
    nationals += ["3100000", "3109999", "3110000", "3099999"]
    outcomes = both_paths(PHONE, ["+1 " + n for n in nationals])
    for national, outcome in zip(nationals, outcomes, strict=True):
        valid = phonenumbers.is_valid_number(phonenumbers.parse("+1" + national, None))
        assert isinstance(outcome, Normalized) == valid, national


# --- 3. values that can never match ----------------------------------------------------


@pytest.mark.parametrize(
    "written",
    ["a@x.com\x00", "\x07a@x.com", "a@x.com\x1b", "a\x1b[31m@x.com", "a@x\x7f.com",
     "a\x9b@x.com", "a@x.c\x01om", "<a@x.com\x00>", "mailto:\x08a@x.com"],
)  # fmt: skip
def test_email_with_a_control_character_is_rejected(written: str) -> None:
    assert one(EMAIL, written) == Rejected(EMAIL, RejectReason.NOT_AN_EMAIL)


@pytest.mark.parametrize(
    "written",
    ["mailto:mailto:a@x.com", "MAILTO:mailto:a@x.com", "mailto: mailto:a@x.com",
     "mailto:<mailto:a@x.com>", "<mailto:mailto:a@x.com>", "mailto:<<a@x.com>>"],
)  # fmt: skip
def test_mailto_is_removed_once_at_most(written: str) -> None:
    assert one(EMAIL, written) == Rejected(EMAIL, RejectReason.NOT_AN_EMAIL)


@pytest.mark.parametrize(
    "written", ["mailto:a@x.com", "<mailto:a@x.com>", "mailto:<a@x.com>", "<a@x.com>"]
)
def test_one_mailto_is_still_removed(written: str) -> None:
    outcome = one(EMAIL, written)
    assert isinstance(outcome, Normalized)
    assert outcome.value == "a@x.com"


@pytest.mark.parametrize("kind", list(IdentifierType))
@pytest.mark.parametrize(
    "written",
    [EMPTY_SHA256, EMPTY_SHA256.upper(), f" {EMPTY_SHA256}\n", "0" * 64, "\ufeff" + "0" * 64],
)
def test_placeholder_hashes_are_refused(kind: IdentifierType, written: str) -> None:
    assert one(kind, written) == Rejected(kind, RejectReason.PLACEHOLDER_HASH)
    assert one(kind, written, "GB") == Rejected(kind, RejectReason.PLACEHOLDER_HASH)


@pytest.mark.parametrize("kind", list(IdentifierType))
def test_a_raw_column_reads_placeholder_values_by_its_type(kind: IdentifierType) -> None:
    # Declared raw, 64 hex characters are a value of the column's type, not a hash.
    for outcome in both_paths(kind, [EMPTY_SHA256, "0" * 64], raw=True):
        assert isinstance(outcome, Rejected)
        assert outcome.reason is not RejectReason.PLACEHOLDER_HASH


def test_the_sha256_of_a_real_value_is_still_taken_as_a_hash() -> None:
    hashed = hashlib.sha256(b"person@email.com").hexdigest()
    outcome = one(EMAIL, hashed)
    assert outcome == Normalized(EMAIL, hashed, hashed, prehashed=True)


@pytest.mark.parametrize(
    "written",
    ["+44 \u20777911 123456", "+44 7911 123456\u00b2", "+44 7911 12345\u00bd",
     "+44 7911 12345\u2460", "+44 7911 12345\u216b", "+\u00b944 7911 123456"],
)  # fmt: skip
@pytest.mark.parametrize("country", [None, "GB"])
def test_a_numeral_that_is_no_decimal_digit_makes_a_phone_invalid(
    written: str, country: str | None
) -> None:
    assert one(PHONE, written, country) == Rejected(PHONE, RejectReason.PHONE_INVALID)


def test_decimal_digits_of_other_scripts_are_still_read() -> None:
    outcome = one(
        PHONE, "+\u0664\u0664 \u0667\u0669\u0661\u0661 \u0661\u0662\u0663\u0664\u0665\u0666"
    )
    assert isinstance(outcome, Normalized)
    assert outcome.value == "447911123456"
