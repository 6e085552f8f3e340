"""Properties that hold for every input: nothing raises, normalizing is idempotent,
pre-hashed values are stable, and the batch API agrees with the scalar one."""

from __future__ import annotations

import hashlib

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiencesync.identifiers import (
    HASH_SQL,
    Normalized,
    Rejected,
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
countries = st.sampled_from([None, "GB", "US", "DE", "IT", "FR", "IN"])
whitespace = st.sampled_from(["", " ", "\t", "\n", "\xa0", "\u3000", "  \r\n"])
phone_like = st.from_regex(r"(tel:)?[+(]?[0-9][0-9 ().\-/+]{0,22}", fullmatch=True)
email_like = st.emails().map(lambda email: email.swapcase() if len(email) % 2 else email)
uuid_like = st.uuids().map(lambda uuid: str(uuid).upper() if uuid.int % 2 else str(uuid))
hex_hash = st.binary(min_size=1, max_size=8).map(lambda b: hashlib.sha256(b).hexdigest())
decoded_bytes = st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape"))

values = st.one_of(
    st.none(),
    st.text(max_size=40),
    decoded_bytes,
    st.builds(lambda pad, v, end: pad + v + end, whitespace, phone_like, whitespace),
    st.builds(lambda pad, v, end: pad + v + end, whitespace, email_like, whitespace),
    uuid_like,
    hex_hash.map(str.upper),
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
    # A normalized phone is whole: it needs no default country to stay what it is.
    assert normalize(kind, first.value, raw=raw) == first
    if kind is IdentifierType.PHONE and not first.prehashed:
        assert normalize(kind, "+" + first.value, default_country=country) == first


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
