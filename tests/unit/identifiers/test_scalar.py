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
    ],
)
def test_email_is_trimmed_and_lowercased_only(raw: str, normalized: str) -> None:
    assert accepted(EMAIL, raw) == normalized


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("\ufeffPerson@email.com", "person@email.com"),  # a BOM at the start of an export
        ("person@email.com\ufeff", "person@email.com"),
        ("per\u200bson@email.com", "person@email.com"),  # zero-width space
        ("\u200e\u202aperson@email.com\u202c\u200f", "person@email.com"),  # bidi marks
        ("\u2060 Person@Email.com \u00ad", "person@email.com"),  # before trimming
        ("<Person@email.com>", "person@email.com"),
        (" < person@email.com > ", "person@email.com"),
        ("mailto:Person@email.com", "person@email.com"),
        ("MAILTO: person@email.com", "person@email.com"),
        ("<mailto:person@email.com>", "person@email.com"),
        ("mailto:<person@email.com>", "person@email.com"),
        ("\ufeff<mailto:First.Last+Tag@GMail.com>", "first.last+tag@gmail.com"),
        # A mailto: URI's query is not part of the address (was a@x.com?subject=hi).
        ("mailto:a@x.com?subject=hi", "a@x.com"),
        ("mailto:a@x.com ?subject=hi&body=x", "a@x.com"),
        ("<mailto:a@x.com?cc=b@y.com>", "a@x.com"),
        ('"a.b"@x.com', '"a.b"@x.com'),  # a quoted local part without < > is kept
    ],
)
def test_email_loses_invisible_characters_and_its_wrapping(raw: str, normalized: str) -> None:
    outcome = normalize(EMAIL, raw)
    assert outcome == normalize(EMAIL, normalized)
    assert accepted(EMAIL, raw) == normalized
    assert hash_value(EMAIL, raw) == sha(normalized)


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
        "<person@email.com",  # what remains must still be one address
        "person@email.com>",
        "<<person@email.com>>",
        "<>",
        "mailto:",
        "mailto:<>",
        "Person Name <person@email.com>",  # a name and an address: not one address
        "<a@x.com>, <b@y.com>",
        # Punctuation around an address is not stripped: what was meant is not sure.
        "a@x.com;",
        "a@x.com,",
        '"a@x.com"',
        "(a@x.com)",
        "a@x.com (work)",
        "a@x.com;b@y.com",
        # A quoted local part holding < or > is valid RFC 5322 but rejected (see docs).
        '"a<b"@x.com',
        # A control character is no part of an address: rejected, not kept or removed.
        "a\x00b@x.y",
        "a@x.y\x07",
        "mailto:mailto:a@x.com",  # "mailto:" is removed once at most
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
        ("+0044 20 7946 0958", "442079460958"),  # '+' and an access prefix
        ("+00 44 7911 123456", "447911123456"),
        ("+011 44 20 7946 0958", "442079460958"),
        ("+01144 (0)20 7946 0958", "442079460958"),
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
        ("14155550123", "US", "14155550123"),  # the country's own code, too long: whole
        ("+1 706 767 5127", "GB", "17067675127"),  # '+' wins over the default
        # The default country's own international prefix is read before a generic 00.
        ("0011 44 20 7946 0958", "AU", "442079460958"),
        ("0011 298 123456", "AU", "298123456"),  # was +1 1298123456
        ("0011 49 30 1234567", "AU", "49301234567"),
        ("001 45 3212 3456", "TH", "4532123456"),  # was +1 4532123456
        ("001 49 30 123456", "KR", "4930123456"),
        ("001 47 2212 3456", "SG", "4722123456"),
        ("001 45 3212 3456", "HK", "4532123456"),
        ("008 45 3212 3456", "ID", "4532123456"),
        ("0044 20 7946 0958", "AU", "442079460958"),  # no AU prefix: 00 still read
        ("011 1 706 767 5127", "CA", "17067675127"),
    ],
)
def test_phone_with_default_country(raw: str, country: str, normalized: str) -> None:
    assert accepted(PHONE, raw, default_country=country) == normalized


@pytest.mark.parametrize(
    "raw",
    [
        "07911 123456",
        "(706) 767-5127",
        "7911 123456",
        "020 7946 0958",
        "0 1234 5678",
        # Digits that happen to make some country's number are not guessed either.
        "(917) 555-1234",  # was read as India: 9175551234
        "(620) 293-9343",  # was read as Indonesia, a digit dropped
        "17067675127",
        "447911123456",
        "4402079460958",
        "1 706 767 5127 ext. 12",
        # 011 without '+' is an international prefix only in North America (a default
        # country says so): elsewhere it starts national numbers.
        "0113965772056",  # Belgrade 011 396 5772 056 (was read as Italy +39 65772056)
        "011 44 20 7946 0958",
        "011 49 30 123456",
        "0113 496 0000",  # Leeds
        "011 2345 6789",  # Delhi
        "011-234-5678",  # Sapporo
        "٠٧٩١١ ١٢٣٤٥٦",  # Arabic-Indic digits, still national
    ],
)
def test_phone_without_country_code_or_default(raw: str) -> None:
    assert reason(PHONE, raw) is RejectReason.PHONE_NO_COUNTRY_CODE


@pytest.mark.parametrize(
    ("raw", "country", "normalized"),
    [
        ("+1 706-767-5127 ext. 123", None, "17067675127"),
        ("+1 706-767-5127 Ext 123", None, "17067675127"),
        ("+1 706-767-5127 extension 123", None, "17067675127"),
        ("+1 706-767-5127 x123", None, "17067675127"),
        ("+1 706-767-5127 X 123", None, "17067675127"),
        ("+1 706-767-5127 #123", None, "17067675127"),
        ("tel:+1-706-767-5127;ext=123", None, "17067675127"),
        ("(706) 767-5127 x 9", "US", "17067675127"),
        ("07911 123456 ext 4", "GB", "447911123456"),
        ("+1 706 767 5127 ｘ12", None, "17067675127"),  # full-width x
        ("+49 30 1234567, 12", None, "49301234567"),  # a dialler's pause
        ("+49 30 1234567;12", None, "49301234567"),  # a dialler's wait
        ("+49 30 1234567 App. 12", None, "49301234567"),
        ("+49 30 123456 Durchwahl 7", None, "4930123456"),
        ("+33 1 23 45 67 89 poste 12", None, "33123456789"),
        ("+34 912 345 678 anexo 12", None, "34912345678"),
        ("+39 06 6982 1234 int. 5", None, "390669821234"),
        ("+39 06 6982 1234 INT 5", None, "390669821234"),
        ("+44 20 7946 0958 (ext. 12)", None, "442079460958"),
    ],
)
def test_phone_extension_is_removed(raw: str, country: str | None, normalized: str) -> None:
    assert accepted(PHONE, raw, default_country=country) == normalized


@pytest.mark.parametrize(
    ("raw", "country", "normalized"),
    [
        ("+٤٤ ٧٩١١ ١٢٣٤٥٦", None, "447911123456"),  # Arabic-Indic
        ("+۴۴ ۷۹۱۱ ۱۲۳۴۵۶", None, "447911123456"),  # Extended Arabic-Indic (Persian)
        ("＋４４ ７９１１ １２３４５６", None, "447911123456"),  # full-width, plus too
        ("+९१ ९८७६५ ४३२१०", None, "919876543210"),  # Devanagari
        ("०९८७६५ ४३२१०", "IN", "919876543210"),
        ("(７０６) ７６７-５１２７", "US", "17067675127"),
    ],
)
def test_phone_in_unicode_digits(raw: str, country: str | None, normalized: str) -> None:
    assert accepted(PHONE, raw, default_country=country) == normalized


@pytest.mark.parametrize(
    ("raw", "country"),
    [
        ("+1 555", None),  # too short
        ("+1 706 767 5127 999", None),  # too long for its country
        ("+44 1234 5678 9012 3456", None),  # more than 15 digits
        ("+999 1234 5678", None),  # no such country code
        ("+0 1234 5678", None),
        ("+44 0 020 7946 0958", None),  # two trunk zeros
        ("+011 12", None),
        # North America: area code and exchange start with 2-9 (NXX-NXX-XXXX).
        ("+1 129 812 3456", None),
        ("+1 029 812 3456", None),
        ("+1 706 167 5127", None),
        ("+1 706 067 5127", None),
        ("1 129 812 3456", "US"),
        ("129 812 3456", "US"),
        ("706 167 5127", "CA"),
        ("+00", None),
        ("x123", "GB"),  # an extension mark before any digit marks no extension
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
    ("raw", "normalized"),
    [
        ("6d92078a82464ba4ae5b76104861e7dc", "6d92078a-8246-4ba4-ae5b-76104861e7dc"),
        (" 6D92078A82464BA4AE5B76104861E7DC ", "6d92078a-8246-4ba4-ae5b-76104861e7dc"),
        ("\ufeffF81D4FAE7DEC11D0A76500A0C91E6BF6", "f81d4fae-7dec-11d0-a765-00a0c91e6bf6"),
    ],
)
def test_maid_without_hyphens_is_written_with_them(raw: str, normalized: str) -> None:
    assert accepted(MAID, raw) == normalized
    assert hash_value(MAID, raw) == hash_value(MAID, normalized)


@pytest.mark.parametrize(
    "raw",
    [
        "00000000-0000-0000-0000-000000000000",  # limited ad tracking
        "00000000000000000000000000000000",  # limited ad tracking, without hyphens
        "6d92078a82464ba4ae5b76104861e7d",  # 31 hex digits
        "6d92078a82464ba4ae5b76104861e7dcc",  # 33
        "6d92078a82464ba4ae5b76104861e7dg",
        "6d92078a-82464ba4ae5b76104861e7dc",  # some hyphens: not rewritten
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
@pytest.mark.parametrize("value", [None, "", " ", "\t\r\n", "\u3000\xa0", "\ufeff", " \u200b "])
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
        "placeholder_hash",
    }


def test_a_phone_in_other_digits_is_never_taken_as_a_hash() -> None:
    """Unicode digits are read as ASCII in the same pass as invisible characters go:
    64 of them are a (too long) phone number, not a hash already made."""
    outcome = normalize(PHONE, "\u0664" * 64)
    assert isinstance(outcome, Rejected)
    hashed = "\ufeff" + "ab" * 32  # a hash with a BOM in front is still one
    assert normalize(PHONE, hashed) == Normalized(PHONE, "ab" * 32, "ab" * 32, prehashed=True)
