"""The batch path's phone rules (Arrow kernels) give what the scalar path (the
``phonenumbers`` parser) gives, value for value, and decide the usual national numbers
without the parser."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneMetadata, PhoneNumberFormat, PhoneNumberType
from phonenumbers.phonenumberutil import ValidationResult, _test_number_length

from audiencesync.identifiers import Normalized, batch, hash_batch, normalize, phones
from audiencesync.identifiers.bench import measure_phone_hashing, synthetic_phones
from audiencesync.identifiers.phone_columns import (
    holds_any_byte,
    national_e164,
    only_digits,
    rules_usable,
    whole_e164,
)
from audiencesync.profiles.synthetic import write_profiles
from audiencesync.types import IdentifierType

PHONE = IdentifierType.PHONE
NUMBER_TYPES = [kind for name, kind in vars(PhoneNumberType).items() if name.isupper()]
VECTOR_REGIONS = sorted(phones.VECTOR_REGIONS)
ELIGIBLE_REGIONS = sorted(
    region for region in phonenumbers.SUPPORTED_REGIONS if phones.build_national_rules(region)
)

View = list[tuple[str | None, str | None]]


def scalar_view(values: Sequence[str | None], region: str | None) -> View:
    out: View = []
    for value in values:
        outcome = normalize(PHONE, value, default_country=region)
        if isinstance(outcome, Normalized):
            out.append((outcome.hash, None))
        else:
            out.append((None, outcome.reason.value))
    return out


def batch_view(values: Sequence[str | None] | pa.Array, region: str | None) -> View:
    hashed = hash_batch(PHONE, values, default_country=region)
    return list(zip(hashed.hashes.to_pylist(), hashed.reasons.to_pylist(), strict=True))


def assert_same(values: Sequence[str | None], region: str | None) -> None:
    expected = scalar_view(values, region)
    got = batch_view(values, region)
    wrong = [(v, g, e) for v, g, e in zip(values, got, expected, strict=True) if g != e]
    assert wrong == []


def example_numbers(region: str) -> Iterator[phonenumbers.PhoneNumber]:
    for kind in NUMBER_TYPES:
        number = phonenumbers.example_number_for_type(region, kind)
        if number is not None:
            yield number


def national_formats(region: str) -> list[str]:
    return [
        phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        for number in example_numbers(region)
    ]


def written_forms(region: str) -> list[str]:
    """Every example number of ``region``, written the ways people write them."""
    metadata = PhoneMetadata.metadata_for_region(region)
    assert metadata is not None
    code = str(metadata.country_code)
    trunk = metadata.national_prefix or ""
    forms: list[str] = []
    for number in example_numbers(region):
        nsn = phonenumbers.national_significant_number(number)
        head, tail = nsn[:3], nsn[3:]
        forms += [
            phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL),
            phonenumbers.format_number(number, PhoneNumberFormat.E164)[1:],
            nsn,
            f"{head} {tail}",
            f"{head}-{tail[:3]}-{tail[3:]}",
            f"({head}) {tail}",
            f"{head}.{tail}",
            f"{trunk}{nsn}",
            f"{trunk}{head} {tail}",
            f"({trunk}){head} {tail}",
            f"({trunk}{head}) {tail}",
            f"{trunk}{head}-{tail}",
            f"{code}{nsn}",
            f"{code} {head} {tail}",
            f"{code}{trunk}{nsn}",
            f"{code} ({trunk}){nsn}",
            f"{metadata.international_prefix or ''}{code}{nsn}",
            f"1{nsn}",
            f"  {trunk}{nsn}\t",
            f"tel:{trunk}{nsn}",
        ]
    return forms


def mutations(region: str, count: int, seed: int) -> list[str]:
    """Digit strings near the region's numbers: digits changed, added, cut, and put
    behind the prefixes its rules care about."""
    metadata = PhoneMetadata.metadata_for_region(region)
    assert metadata is not None
    code = str(metadata.country_code)
    rules = phones.build_national_rules(region)
    rng = random.Random(f"{region}-{seed}")
    nsns = [phonenumbers.national_significant_number(n) for n in example_numbers(region)]
    prefixes = ["", "", "0", "1", "8", "9", code, code + "0", code + "1", "011", "01"]
    if rules is not None:
        prefixes += [p for p in rules.undecided + rules.after_code if p.isdigit()]
    prefixes += ["180020", "1831", "14110011", "0161", "99", "000800"]
    values = []
    for _ in range(count):
        body = rng.choice(nsns) if nsns and rng.random() < 0.7 else ""
        body = "".join(rng.choice("0123456789") if rng.random() < 0.2 else c for c in body)
        change = rng.randint(-3, 3)
        if not body or change > 0:
            body += "".join(
                rng.choice("0123456789") for _ in range(max(change, rng.randint(0, 12)))
            )
        elif change < 0:
            body = body[:change]
        digits = rng.choice(prefixes) + body
        cut = rng.randint(0, len(digits))
        values.append(rng.choice([digits, f"{digits[:cut]} {digits[cut:]}", f"({digits})"]))
    return values


# --- the pieces -----------------------------------------------------------------------


def test_only_digits_equals_the_regex() -> None:
    texts = ["+44 (0)20 7946-0958", "", None, "abc", "é9x٣4", "0044.20", " 1 ", "12" * 300]
    layouts = [pa.array(texts, pa.string())]
    layouts += [layouts[0].slice(2), layouts[0].slice(1, 4), pa.array([None, None], pa.string())]
    layouts += [pa.array([], pa.string()), pa.array(["", ""], pa.string())]
    for strings in layouts:
        got = only_digits(strings)
        got.validate(full=True)
        assert got.equals(pc.replace_substring_regex(strings, r"[^0-9]+", ""))


def test_holds_any_byte_sees_only_the_array_s_own_rows() -> None:
    texts = ["x1", "+44 20", None, "#9", "07911", "é", "<a@b.c>"]
    strings = pa.array(texts, pa.string())
    cases = [strings, strings.slice(1, 3), strings.slice(4), strings.slice(4, 1)]
    cases += [pa.array([], pa.string()), pa.array([None], pa.string())]
    cases += [strings.cast(pa.large_string())]
    for array in cases:
        values = [text for text in array.to_pylist() if text is not None]
        for chars in ("x#", "<:", "x", "z"):
            expected = any(char in text for text in values for char in chars)
            assert holds_any_byte(array, chars) is expected, (array, chars)


def whole_candidates() -> list[str | None]:
    rng = random.Random(0)
    values: list[str | None] = [None, "", "0", "00", "1", "44"]
    for code in phones.phone_tables().possible_lengths:
        for length in range(0, 19):
            for extra in ("", "0", "00", "1"):
                tail = "".join(rng.choice("0123456789") for _ in range(length))
                values.append(code + extra + tail)
    values += [
        "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 20))) for _ in range(5000)
    ]
    return values


def test_whole_e164_equals_to_e164() -> None:
    values = whole_candidates()
    got = whole_e164(pa.array(values, pa.string())).to_pylist()
    expected = [None if value is None else phones.to_e164(value) for value in values]
    assert got == expected


def test_too_long_matches_the_parser() -> None:
    for region in ELIGIBLE_REGIONS:
        metadata = PhoneMetadata.metadata_for_region(region)
        rules = phones.build_national_rules(region)
        assert metadata is not None
        assert rules is not None
        for length in range(phones.MAX_DIALLED_DIGITS + 1):
            too_long = _test_number_length("5" * length, metadata) == ValidationResult.TOO_LONG
            assert (length in rules.code_reading_lengths) == too_long, (region, length)


def test_rules_of_some_dialling_plans() -> None:
    gb = phones.build_national_rules("GB")
    us = phones.build_national_rules("US")
    it = phones.build_national_rules("IT")
    assert gb is not None
    assert (gb.kind, gb.code, gb.after_code, gb.undecided) == (
        "trunk_zero",
        "44",
        ("0", "180020"),
        ("180020",),
    )
    assert us is not None
    assert (us.kind, us.code, us.undecided) == ("trunk_is_code", "1", ("011",))
    assert it is not None
    assert (it.kind, it.drops_zero, it.after_code) == ("no_trunk", False, ())
    # Prefix transform rules, or a trunk prefix that is neither '0' nor the country code.
    for region in ("JP", "BR", "RU", "AR", "HU", "GG"):
        assert phones.build_national_rules(region) is None, region


@pytest.mark.parametrize("region", VECTOR_REGIONS)
def test_allow_listed_region_has_usable_rules(region: str) -> None:
    rules = phones.national_rules(region)
    assert rules is not None
    assert rules_usable(rules)


@pytest.mark.parametrize("region", VECTOR_REGIONS)
def test_national_formats_are_decided_without_the_parser(region: str) -> None:
    rules = phones.national_rules(region)
    assert rules is not None
    digits = only_digits(pa.array(national_formats(region), pa.string()))
    column = national_e164(digits, pa.repeat(True, len(digits)), whole_e164(digits), rules)
    assert not pc.any(column.undecided).as_py()
    assert column.e164.null_count == 0


# --- batch == scalar ------------------------------------------------------------------


@pytest.mark.parametrize("region", VECTOR_REGIONS)
def test_allow_listed_region_batch_equals_scalar(region: str) -> None:
    values: list[str | None] = [None, "", "  ", "n/a", "+", "12"]
    values += written_forms(region) + mutations(region, 2000, seed=0)
    assert_same(values, region)
    # Other countries' numbers in the same column, and no default country at all.
    assert_same(values[:200], "GB" if region != "GB" else "US")


def test_every_eligible_region_batch_equals_scalar(monkeypatch: pytest.MonkeyPatch) -> None:
    """The metadata check alone makes the rules exact: true beyond the allow-list too."""
    monkeypatch.setattr(phones, "national_rules", phones.build_national_rules)
    batch._national_rules.cache_clear()
    try:
        assert len(ELIGIBLE_REGIONS) > 150
        for region in ELIGIBLE_REGIONS:
            assert_same(written_forms(region) + mutations(region, 100, seed=1), region)
    finally:
        batch._national_rules.cache_clear()


def test_demo_phone_column(tmp_path: Path) -> None:
    path = write_profiles(tmp_path / "profiles.parquet", 6000)
    column = pq.read_table(path, columns=["phone"]).column("phone")
    values = column.to_pylist()
    for region in (None, "GB", "US", "FR", "DE", "JP"):
        expected = scalar_view(values, region)
        assert batch_view(column, region) == expected, region


SETTINGS = settings(
    database=None,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow],
)
prefixes = st.sampled_from(
    ["", "0", "1", "00", "011", "44", "440", "4418", "180020", "1831", "99", "0161", "8", "91"]
)
separators = st.sampled_from(["", "", " ", "-", ".", "(", ")", "/"])
digit_runs = st.text("0123456789", max_size=6)
national_like = st.builds(
    lambda prefix, runs: prefix + "".join(sep + run for sep, run in runs),
    prefixes,
    st.lists(st.tuples(separators, digit_runs), max_size=4),
)


@SETTINGS
@given(st.sampled_from(VECTOR_REGIONS), st.lists(national_like, max_size=30))
def test_national_digits_batch_equals_scalar(region: str, values: list[str]) -> None:
    assert batch_view(values, region) == scalar_view(values, region)


@pytest.mark.parametrize("region", ["GB", "US", "JP", None])
def test_bench_mixed_column(region: str | None) -> None:
    values = synthetic_phones(3000, mix="mixed", seed=3)
    assert batch_view(values, region) == scalar_view(values, region)
    assert any(value is None for value in values)
    assert sum(1 for value in values if value and value.startswith(("+", "00"))) > 900


def test_measure_phone_hashing_reports_the_mix() -> None:
    figures = measure_phone_hashing(500, default_country="GB", mix="mixed", repeats=1)
    expected = Counter(
        reason for _, reason in scalar_view(synthetic_phones(500, mix="mixed"), "GB")
    )
    assert figures["mix"] == "mixed"
    assert figures["default_country"] == "GB"
    assert figures["phones"] == 500
    assert figures["accepted"] == expected.pop(None)
    assert figures["rejected"] == dict(expected)
    assert {"seconds", "from_arrow_seconds", "bare_hashlib_seconds"} <= set(figures)
