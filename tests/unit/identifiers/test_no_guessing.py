"""A phone number without its country is never guessed (issue 12).

With no default country, 43.5% of valid US numbers written without "+1" used to be
accepted as another country's number ("(917) 555-1234" read as India), and so sent as
hashes that never match. Here: 10,000 valid national numbers of many countries, as
people write them, and not one is accepted by either path.
"""

from __future__ import annotations

import random
from collections import Counter

import phonenumbers
import pytest

from audiencesync.identifiers import Normalized, RejectReason, hash_batch, normalize
from audiencesync.types import IdentifierType

PHONE = IdentifierType.PHONE
REGIONS = [
    "US", "CA", "GB", "DE", "FR", "IT", "ES", "IN", "JP", "BR", "AU", "MX", "NG", "AT",
    "NL", "CN", "RU", "ID", "KR", "ZA", "AR", "TR", "PH", "IE", "SE",
]  # fmt: skip
TYPES = [
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
]


def national_numbers(count: int, seed: int = 12) -> list[tuple[str, str]]:
    """``count`` (region, written number): valid numbers (``phonenumbers`` says so) made
    from each region's example numbers with random digits, written the national way."""
    rng = random.Random(seed)
    examples = [
        (region, example)
        for region in REGIONS
        for kind in TYPES
        if (example := phonenumbers.example_number_for_type(region, kind)) is not None
    ]
    found: list[tuple[str, str]] = []
    while len(found) < count:
        region, example = rng.choice(examples)
        national = str(example.national_number)
        keep = rng.randint(1, min(4, len(national)))
        digits = national[:keep] + "".join(rng.choices("0123456789", k=len(national) - keep))
        number = phonenumbers.PhoneNumber(
            country_code=example.country_code, national_number=int(digits)
        )
        if example.italian_leading_zero:
            number.italian_leading_zero = True
        if not phonenumbers.is_valid_number_for_region(number, region):
            continue
        written = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        style = rng.random()
        if style < 0.3:  # digits only
            written = "".join(c for c in written if c.isdigit())
        elif style < 0.4:
            written = written.replace(" ", "-")
        found.append((region, written))
    return found


NUMBERS = national_numbers(10_000)


def test_the_sample_is_many_countries_of_valid_national_numbers() -> None:
    by_region = Counter(region for region, _ in NUMBERS)
    assert len(NUMBERS) == 10_000
    assert set(by_region) == set(REGIONS)
    assert min(by_region.values()) > 100
    assert not any(written.lstrip().startswith("+") for _, written in NUMBERS)
    # Each is a real number of its country: with that default country it is read.
    sample = NUMBERS[:300]
    assert all(
        isinstance(normalize(PHONE, written, default_country=region), Normalized)
        for region, written in sample
    )


def test_no_national_number_is_accepted_without_a_default_country() -> None:
    written = [number for _, number in NUMBERS]
    batch = hash_batch(PHONE, written)
    assert batch.accepted == 0
    assert dict(batch.rejected) == {RejectReason.PHONE_NO_COUNTRY_CODE: 10_000}
    outcomes = Counter(
        getattr(normalize(PHONE, number), "reason", "accepted") for number in written
    )
    assert outcomes == {RejectReason.PHONE_NO_COUNTRY_CODE: 10_000}


@pytest.mark.parametrize(
    ("written", "was_read_as"),
    [("(917) 555-1234", "9175551234"), ("(620) 293-9343", "622939343")],
)
def test_the_reported_guesses_are_rejected(written: str, was_read_as: str) -> None:
    assert normalize(PHONE, written).reason is RejectReason.PHONE_NO_COUNTRY_CODE  # type: ignore[union-attr]
    assert hash_batch(PHONE, [written]).reasons.to_pylist() == ["phone_no_country_code"]
    assert normalize(PHONE, written, default_country="US") == normalize(PHONE, "+1 " + written)
    assert was_read_as not in str(normalize(PHONE, written))
