"""The normalization rules, one value at a time (SNAPCHAT_API.md, "Normalizing")."""

from __future__ import annotations

import hashlib

import pytest

from audiencesync.errors import UserInputError
from audiencesync.identifiers import (
    MAX_IDENTIFIER_CHARS,
    Normalized,
    Rejected,
    RejectReason,
    hash_value,
    normalize,
)
from audiencesync.types import IdentifierType

EMAIL = IdentifierType.EMAIL
PHONE = IdentifierType.PHONE
MAID = IdentifierType.MAID


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def accepted(kind: IdentifierType, value: str | None, **options: object) -> str:
    outcome = normalize(kind, value, **options)  # type: ignore[arg-type]
    assert isinstance(outcome, Normalized), outcome
    assert outcome.hash == sha(outcome.value) or outcome.prehashed
    return outcome.value


def reason(kind: IdentifierType, value: object, **options: object) -> RejectReason:
    outcome = normalize(kind, value, **options)  # type: ignore[arg-type]
    assert isinstance(outcome, Rejected), outcome
    return outcome.reason


# --- the contract's examples ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "raw", "normalized", "hashed"),
    [
        (
            EMAIL,
            "Person@email.com ",
            "person@email.com",
            "b375b7bbddb3de3298fbc7641063d9f03a38e118aa4480c8ab9f58740982e8bd",
        ),
        (
            PHONE,
            "+1(706)-767-5127",
            "17067675127",
            "2fd199db6d3fa9fe754886ff1822f2867fcb104a6639495eca25c2978efe4ed4",
        ),
        (
            MAID,
            "F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6",
            "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
            "30a5154b77ab8b2ddbe19f5e7af72f33cc2a4a41f22940d965102650a1c72863",
        ),
    ],
)
def test_contract_examples(kind: IdentifierType, raw: str, normalized: str, hashed: str) -> None:
    assert normalize(kind, raw) == Normalized(kind, normalized, hashed)
    assert hash_value(kind, raw) == hashed
    assert hash_value(kind.value.upper(), raw) == hashed


# --- email ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("  A@B.CO\t\n", "a@b.co"),
        ("First.Last+Tag@GMail.com", "first.last+tag@gmail.com"),  # no dot or +tag removal
        ("x@y.", "x@y."),  # a sanity check, not RFC 5322
        ("a@.z", "a@.z"),
        ("\xa0user@example.com\u3000", "user@example.com"),  # Unicode spaces are trimmed
        ("ÜSER@Exämple.DE", "üser@exämple.de"),
        ("İ@x.tr", "i̇@x.tr"),  # Python's full lowercase mapping
        ("a\x00b@x.y", "a\x00b@x.y"),  # control characters are not whitespace
    ],
)
def test_email_is_trimmed_and_lowercased_only(raw: str, normalized: str) -> None:
    assert accepted(EMAIL, raw) == normalized


@pytest.mark.parametrize(
    "raw",
    [
        "no-at-sign.com",
        "two@@x.com",
        "a@b@c.com",
        "@example.com",
        "user@localhost",
        "user@",
        "us er@example.com",
        "user@exa mple.com",
        "user\t@example.com",
        "user@example\u2003.com",  # Unicode whitespace inside
        "a" * 63 + "@",
    ],
)
def test_not_an_email(raw: str) -> None:
    assert reason(EMAIL, raw) is RejectReason.NOT_AN_EMAIL


# --- phone ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("+44 (0)20 7946 0958", "442079460958"),  # the trunk 0 after the country code goes
        ("+44 020 7946 0958", "442079460958"),
        ("0044 20 7946 0958", "442079460958"),  # leading 00 goes
        ("00 1 706 767 5127", "17067675127"),
        ("+39 06 6982 1234", "390669821234"),  # Italy keeps its leading 0
        ("+33 (0)6 12.34.56.78", "33612345678"),
        ("tel:+49 30 123456", "4930123456"),
        ("+1 706 767 5127 ", "17067675127"),
        ("17067675127", "17067675127"),  # digits only: a possible number as it stands
        ("447911123456", "447911123456"),
        ("4402079460958", "442079460958"),
    ],
)
def test_phone_with_country_code(raw: str, normalized: str) -> None:
    assert accepted(PHONE, raw) == normalized


@pytest.mark.parametrize(
    ("raw", "country", "normalized"),
    [
        ("07911 123456", "GB", "447911123456"),
        ("7911 123456", "GB", "447911123456"),
        ("020 7946 0958", "gb", "442079460958"),
        ("(706) 767-5127", "US", "17067675127"),
        ("1 (706) 767-5127", "US", "17067675127"),
        ("011 44 20 7946 0958", "US", "442079460958"),  # the US international prefix
        ("06 12 34 56 78", "FR", "33612345678"),
        ("030 123456", "DE", "4930123456"),
        ("4917067675127", "DE", "4917067675127"),  # already whole and valid: kept
        ("4930123456", "DE", "4930123456"),
        ("98765 43210", "IN", "919876543210"),
        ("91234 56789", "IN", "919123456789"),  # a mobile that starts like India's code
        ("919123456789", "IN", "919123456789"),
        ("447911123456", "US", "447911123456"),  # not a US number; a whole UK one
        ("+1 706 767 5127", "GB", "17067675127"),  # '+' wins over the default
    ],
)
def test_phone_with_default_country(raw: str, country: str, normalized: str) -> None:
    assert accepted(PHONE, raw, default_country=country) == normalized


@pytest.mark.parametrize(
    "raw",
    ["07911 123456", "(706) 767-5127", "7911 123456", "020 7946 0958", "0 1234 5678"],
)
def test_phone_without_country_code_or_default(raw: str) -> None:
    assert reason(PHONE, raw) is RejectReason.PHONE_NO_COUNTRY_CODE


@pytest.mark.parametrize(
    ("raw", "country"),
    [
        ("+1 555", None),  # too short
        ("+1 706 767 5127 999", None),  # too long for its country
        ("+44 1234 5678 9012 3456", None),  # more than 15 digits
        ("+999 1234 5678", None),  # no such country code
        ("+0 1234 5678", None),
        ("+44 0 020 7946 0958", None),  # two trunk zeros
        ("00", None),
        ("+", None),
        ("abc", None),
        ("call me", "GB"),
        ("12", "GB"),
        ("1" * 40, "GB"),
    ],
)
def test_phone_invalid(raw: str, country: str | None) -> None:
    assert reason(PHONE, raw, default_country=country) is RejectReason.PHONE_INVALID


def test_unknown_default_country_is_a_user_error() -> None:
    with pytest.raises(UserInputError, match="GB"):
        normalize(PHONE, "07911 123456", default_country="UK")
    with pytest.raises(UserInputError, match="ISO 3166-1 alpha-2"):
        normalize(PHONE, "07911 123456", default_country="Narnia")


# --- mobile ad id ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        (" 6D92078A-8246-4BA4-AE5B-76104861E7DC\n", "6d92078a-8246-4ba4-ae5b-76104861e7dc"),
        ("38400000-8cf0-11bd-b23e-10b96e40000d", "38400000-8cf0-11bd-b23e-10b96e40000d"),
    ],
)
def test_maid_is_trimmed_and_lowercased(raw: str, normalized: str) -> None:
    assert accepted(MAID, raw) == normalized


@pytest.mark.parametrize(
    "raw",
    [
        "00000000-0000-0000-0000-000000000000",  # limited ad tracking
        "6d92078a82464ba4ae5b76104861e7dc",  # the hyphens are part of the id
        "{6d92078a-8246-4ba4-ae5b-76104861e7dc}",
        "6d92078a-8246-4ba4-ae5b-76104861e7d",
        "6d92078a-8246-4ba4-ae5b-76104861e7dg",
        "not an id",
    ],
)
def test_maid_invalid(raw: str) -> None:
    assert reason(MAID, raw) is RejectReason.MAID_INVALID


# --- every kind -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(IdentifierType))
def test_prehashed_is_lowercased_and_taken_as_is(kind: IdentifierType) -> None:
    hashed = sha("person@email.com")
    outcome = normalize(kind, f"  {hashed.upper()} ")
    assert outcome == Normalized(kind, hashed, hashed, prehashed=True)


@pytest.mark.parametrize("kind", list(IdentifierType))
def test_raw_column_hashes_hex_values_too(kind: IdentifierType) -> None:
    digits = "1" * 64
    outcome = normalize(kind, digits, raw=True)
    assert not (isinstance(outcome, Normalized) and outcome.prehashed)
    assert normalize(kind, "a" * 63) != Normalized(kind, "a" * 63, "a" * 63, prehashed=True)


@pytest.mark.parametrize("kind", list(IdentifierType))
@pytest.mark.parametrize("value", [None, "", " ", "\t\r\n", "\u3000\xa0"])
def test_empty(kind: IdentifierType, value: str | None) -> None:
    assert reason(kind, value) is RejectReason.EMPTY


@pytest.mark.parametrize("kind", list(IdentifierType))
def test_too_long_even_for_ten_megabytes(kind: IdentifierType) -> None:
    assert reason(kind, "a@b.c" + "x" * (MAX_IDENTIFIER_CHARS - 4)) is RejectReason.TOO_LONG
    assert reason(kind, "x" * 10_000_000) is RejectReason.TOO_LONG
    assert reason(kind, " " * 10_000_000) is RejectReason.EMPTY


@pytest.mark.parametrize("kind", list(IdentifierType))
@pytest.mark.parametrize("value", ["a\udc80@b.com", "\ud800", b"a@b.com", 17067675127, 1.5])
def test_not_text(kind: IdentifierType, value: object) -> None:
    assert reason(kind, value) is RejectReason.INVALID_TEXT


def test_unknown_kind_is_a_user_error() -> None:
    with pytest.raises(UserInputError, match="email, phone, maid"):
        normalize("idfa", "x")


def test_hash_value_is_none_when_rejected() -> None:
    assert hash_value(EMAIL, "nope") is None


def test_reason_codes_are_stable() -> None:
    assert {r.value for r in RejectReason} == {
        "empty",
        "too_long",
        "invalid_text",
        "not_an_email",
        "phone_no_country_code",
        "phone_invalid",
        "maid_invalid",
    }
