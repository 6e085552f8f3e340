"""Properties that hold for every input: nothing raises, normalizing is idempotent,
pre-hashed values are stable, and the batch API agrees with the scalar one."""

from __future__ import annotations

import hashlib

import duckdb
import phonenumbers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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

# No example database: tests must not leave a .hypothesis folder in the working tree.
SETTINGS = settings(
    database=None,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow],
)

kinds = st.sampled_from(list(IdentifierType))
# AU, TH, KR, SG, HK, ID dial abroad with a prefix of their own (0011, 001, 008...).
countries = st.sampled_from(
    [None, "GB", "US", "DE", "IT", "FR", "IN", "AU", "TH", "KR", "SG", "HK", "ID", "CA"]
)
whitespace = st.sampled_from(["", " ", "\t", "\n", "\xa0", "\u3000", "  \r\n"])
phone_like = st.from_regex(r"(tel:)?[+(]?[0-9][0-9 ().\-/+]{0,22}", fullmatch=True)
email_like = st.emails().map(lambda email: email.swapcase() if len(email) % 2 else email)
uuid_like = st.uuids().map(lambda uuid: str(uuid).upper() if uuid.int % 2 else str(uuid))
hex_hash = st.binary(min_size=1, max_size=8).map(lambda b: hashlib.sha256(b).hexdigest())
decoded_bytes = st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape"))

# The inputs issue 12 made readable, or rejected instead of guessed.
#: Unicode format characters (category Cf): BOM, zero-width, bidi, soft hyphen, tags.
format_chars = st.sampled_from(
    ["\ufeff", "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u202a", "\u202c",
     "\u2060", "\u2066", "\u00ad", "\U000e0041"]
)  # fmt: skip
#: digit '0' of scripts of decimal digits (category Nd): 0-9 follow it in Unicode.
digit_zeros = st.sampled_from([0x30, 0x660, 0x6F0, 0x966, 0x9E6, 0xE50, 0xFF10, 0x1D7CE])
access_prefix = st.sampled_from(
    ["", "+", "00", "+00", "011", "+011", "0", "1", "+0", "0011", "001", "008", "+1 1", "+1 0"]
)
extension = st.sampled_from(
    ["", " ext. 123", " ext 4", "x12", " X 9", "#77", ";ext=5", " extension 1", "x", "#",
     ", 12", ";9", ",", " App. 12", " Durchwahl 7", " poste 12", " anexo 3", " int. 5",
     " INT 5", " EXT 4"]
)  # fmt: skip


def _with_format_chars(text: str, chars: list[str], where: list[int]) -> str:
    for char, index in zip(chars, where, strict=False):
        cut = index % (len(text) + 1)
        text = text[:cut] + char + text[cut:]
    return text


def _in_digits(text: str, zero: int) -> str:
    return "".join(chr(zero + int(c)) if c.isascii() and c.isdigit() else c for c in text)


invisible = st.lists(format_chars, max_size=3)
positions = st.lists(st.integers(0, 60), min_size=3, max_size=3)
phone_parts = st.from_regex(r"[0-9][0-9 ().\-]{5,16}", fullmatch=True)


def _example_numbers() -> list[str]:
    """Real numbers of several countries, written "+CC ..." and nationally."""
    written = []
    for region in ["US", "GB", "DE", "FR", "IT", "IN", "JP", "BR", "AU", "MX", "NG", "AT"]:
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                for style in (
                    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
                    phonenumbers.PhoneNumberFormat.NATIONAL,
                ):
                    written.append(phonenumbers.format_number(number, style))
    return written


EXAMPLE_NUMBERS = _example_numbers()
real_phones = st.builds(
    lambda written, prefix: prefix + written[1:] if written.startswith("+") else written,
    st.sampled_from(EXAMPLE_NUMBERS),
    st.sampled_from(["+", "00", "+00", "011", "+011", "", "0", "0011", "001"]),
)
new_phones = st.builds(
    lambda number, ext, zero: _in_digits(number + ext, zero),
    st.one_of(
        real_phones,
        st.builds(lambda prefix, number: prefix + number, access_prefix, phone_parts),
    ),
    extension,
    st.one_of(st.just(0x30), digit_zeros),
)
wrapped_emails = st.builds(
    lambda email, form: form.format(email),
    email_like,
    st.sampled_from(
        ["<{}>", "mailto:{}", "MailTo: {}", "<mailto:{}>", "mailto:<{}>", " < {} > ", "<{}",
         "{}>", "<<{}>>", "Name <{}>", "mailto:", "mailto:{}?subject=hi", "<mailto:{}?a=b>",
         "{};", "{},", '"{}"', "({})", "mailto:{} ?x"]
    ),
)  # fmt: skip
unhyphenated_ids = st.one_of(
    st.uuids().map(lambda uuid: uuid.hex.upper() if uuid.int % 2 else uuid.hex),
    st.just("0" * 32),
    st.from_regex(r"[0-9a-fA-F]{31,33}", fullmatch=True),
)
new_inputs = st.builds(
    _with_format_chars,
    st.one_of(new_phones, wrapped_emails, unhyphenated_ids, email_like, phone_like, uuid_like),
    invisible,
    positions,
)

# The review of issue 12: values that must be rejected rather than read some other way.
#: national numbers (US, GB) with one digit too many, and 7-digit North American ones.
mistyped_phones = st.builds(
    lambda number, digit, at: (
        number[: at % (len(number) + 1)] + digit + number[at % (len(number) + 1) :]
    ),
    st.one_of(
        st.from_regex(r"[2-9][0-9]{2}[2-9][0-9]{6}", fullmatch=True),
        st.from_regex(r"07[0-9]{9}", fullmatch=True),
    ),
    st.sampled_from("0123456789"),
    st.integers(0, 12),
)
short_nanp = st.builds(
    lambda prefix, number: prefix + number,
    st.sampled_from(["", "+1 ", "1", "001 ", "+1-"]),
    st.one_of(st.from_regex(r"[0-9]{3}-?[0-9]{4}", fullmatch=True), st.just("310-1234")),
)
#: control characters (category Cc) anywhere in an address.
control_emails = st.builds(
    lambda email, char, at: email[: at % (len(email) + 1)] + char + email[at % (len(email) + 1) :],
    email_like,
    st.sampled_from(["\x00", "\x07", "\x08", "\x1b", "\x7f", "\x9b", "\x01"]),
    st.integers(0, 60),
)
twice_mailto = st.builds(
    lambda email, form: form.format(email),
    email_like,
    st.sampled_from(
        ["mailto:mailto:{}", "mailto:<mailto:{}>", "<mailto:mailto:{}>", "MAILTO: mailto:{}"]
    ),
)
placeholder_hashes = st.builds(
    lambda hashed, case, pad: pad + case(hashed) + pad,
    st.sampled_from([hashlib.sha256(b"").hexdigest(), "0" * 64]),
    st.sampled_from([str.upper, str.lower]),
    whitespace,
)
#: numerals that are no decimal digit (categories No, Nl): superscripts, fractions...
other_numerals = st.builds(
    lambda number, char, at: (
        number[: at % (len(number) + 1)] + char + number[at % (len(number) + 1) :]
    ),
    new_phones,
    st.sampled_from(["\u00b2", "\u2077", "\u00bd", "\u2460", "\u216b", "\u00b9"]),
    st.integers(0, 30),
)
review_inputs = st.one_of(
    mistyped_phones, short_nanp, control_emails, twice_mailto, placeholder_hashes, other_numerals
)

values = st.one_of(
    st.none(),
    st.text(max_size=40),
    decoded_bytes,
    st.builds(lambda pad, v, end: pad + v + end, whitespace, phone_like, whitespace),
    st.builds(lambda pad, v, end: pad + v + end, whitespace, email_like, whitespace),
    uuid_like,
    hex_hash.map(str.upper),
    new_phones,
    wrapped_emails,
    unhyphenated_ids,
    new_inputs,
    review_inputs,
)


@SETTINGS
@given(kinds, st.one_of(st.text(), decoded_bytes, st.none()), countries, st.booleans())
def test_no_input_raises(
    kind: IdentifierType, value: str | None, country: str | None, raw: bool
) -> None:
    outcome = normalize(kind, value, default_country=country, raw=raw)
    assert isinstance(outcome, Normalized | Rejected)
    if isinstance(outcome, Normalized):
        assert len(outcome.hash) == 64
        assert outcome.hash == outcome.hash.lower()


@SETTINGS
@given(kinds, values, countries, st.booleans())
def test_normalizing_is_idempotent(
    kind: IdentifierType, value: str | None, country: str | None, raw: bool
) -> None:
    first = normalize(kind, value, default_country=country, raw=raw)
    if not isinstance(first, Normalized):
        return
    if kind is IdentifierType.PHONE and not first.prehashed:
        # A normalized phone is whole: with its '+' it needs no default country, and
        # any default country leaves it as it is.
        assert normalize(kind, "+" + first.value) == first
        assert normalize(kind, "+" + first.value, default_country=country) == first
        # Without its '+' and with no default country it is never guessed.
        assert isinstance(normalize(kind, first.value), Rejected)
    else:
        assert normalize(kind, first.value, raw=raw) == first


@SETTINGS
@given(kinds, hex_hash, st.sampled_from([str.upper, str.lower, str.title]), whitespace)
def test_hashing_a_prehashed_value_is_stable(
    kind: IdentifierType, hashed: str, case: object, pad: str
) -> None:
    written = pad + case(hashed) + pad  # type: ignore[operator]
    outcome = normalize(kind, written)
    assert outcome == Normalized(kind, hashed, hashed, prehashed=True)
    assert normalize(kind, outcome.value) == outcome
    assert hash_batch(kind, [written]).hashes.to_pylist() == [hashed]


@SETTINGS
@given(kinds, st.lists(values, max_size=30), countries, st.booleans())
def test_batch_equals_scalar(
    kind: IdentifierType, batch_values: list[str | None], country: str | None, raw: bool
) -> None:
    batch = hash_batch(kind, batch_values, default_country=country, raw=raw)
    expected: list[tuple[str | None, str | None]] = []
    for value in batch_values:
        outcome = normalize(kind, value, default_country=country, raw=raw)
        if isinstance(outcome, Normalized):
            expected.append((outcome.hash, None))
        else:
            expected.append((None, outcome.reason.value))
    assert list(zip(batch.hashes.to_pylist(), batch.reasons.to_pylist(), strict=True)) == expected


@SETTINGS
@given(kinds, st.lists(values, max_size=30), countries, st.booleans())
def test_prepared_rows_hash_in_duckdb_to_the_batch_hashes(
    kind: IdentifierType, batch_values: list[str | None], country: str | None, raw: bool
) -> None:
    """What the export engine hashes in its diff query is what hash_batch gives."""
    batch = hash_batch(kind, batch_values, default_country=country, raw=raw)
    prepared = prepare_batch(kind, batch_values, default_country=country, raw=raw)
    rows = prepared.rows  # noqa: F841 - read by name in the query below
    with duckdb.connect() as con:
        hashed = [h for (h,) in con.execute(f"SELECT {HASH_SQL} FROM rows").fetchall()]
    assert hashed == batch.hashes.drop_null().to_pylist()  # same values, same order
    assert prepared.reasons.to_pylist() == batch.reasons.to_pylist()
    assert (prepared.accepted, prepared.prehashed) == (batch.accepted, batch.prehashed)
    assert prepared.rejected == batch.rejected


@SETTINGS
@given(
    kinds,
    st.lists(
        st.one_of(new_phones, wrapped_emails, unhyphenated_ids, new_inputs, review_inputs),
        max_size=30,
    ),
    countries,
)
def test_batch_equals_scalar_on_repairable_and_ambiguous_inputs(
    kind: IdentifierType, batch_values: list[str], country: str | None
) -> None:
    """Extensions, access prefixes, Unicode digits, invisible characters, wrapped emails
    and ids without hyphens, and what the review found read wrongly (mistyped national
    numbers, 7-digit "+1" numbers, control characters, a second "mailto:", placeholder
    hashes, superscript digits): the column kernels decide them as the scalar code does."""
    batch = hash_batch(kind, batch_values, default_country=country)
    expected = [normalize(kind, value, default_country=country) for value in batch_values]
    assert batch.hashes.to_pylist() == [
        e.hash if isinstance(e, Normalized) else None for e in expected
    ]
    assert batch.reasons.to_pylist() == [
        e.reason.value if isinstance(e, Rejected) else None for e in expected
    ]


#: digits with no international mark for these countries: no '+', no leading "00", and
#: no "011" (North America's international prefix; the others' is "00").
unmarked_digits = st.one_of(
    st.from_regex(r"[1-9][0-9]{5,14}", fullmatch=True),
    st.from_regex(r"0[1-9][0-9]{5,13}", fullmatch=True).filter(lambda d: not d.startswith("011")),
    mistyped_phones.filter(lambda d: not d.startswith(("00", "011"))),
)


@SETTINGS
@given(
    st.lists(unmarked_digits, min_size=1, max_size=30),
    st.sampled_from(["US", "CA", "GB", "DE", "FR", "IN"]),
)
def test_a_default_country_never_yields_another_countrys_number(
    batch_values: list[str], country: str
) -> None:
    """Digits without an international mark are the default country's number or none."""
    code = str(phonenumbers.country_code_for_region(country))
    outcomes = [
        normalize(IdentifierType.PHONE, value, default_country=country) for value in batch_values
    ]
    for outcome in outcomes:
        if isinstance(outcome, Normalized):
            assert phonenumbers.parse("+" + outcome.value, None).country_code == int(code)
        else:
            assert outcome.reason is RejectReason.PHONE_INVALID
    batch = hash_batch(IdentifierType.PHONE, batch_values, default_country=country)
    assert batch.hashes.to_pylist() == [
        o.hash if isinstance(o, Normalized) else None for o in outcomes
    ]
