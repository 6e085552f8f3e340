"""The batch API gives, value by value, what the scalar API gives."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence

import pyarrow as pa
import pytest

from audiencesync.errors import UserInputError
from audiencesync.identifiers import (
    HashedBatch,
    Normalized,
    RejectReason,
    hash_batch,
    normalize,
)
from audiencesync.identifiers.batch import _duckdb
from audiencesync.types import IdentifierType

HEX = hashlib.sha256(b"x").hexdigest()
TEN_MB = 10_000_000

MIXED: list[object] = [
    None,
    "",
    "   ",
    "\t\n",
    "\xa0\u3000",
    "Person@email.com ",
    " first.LAST+tag@Example.co.uk",
    "not-an-email",
    "a@b@c.d",
    "ÜSER@exämple.de",
    "\xa0nbsp@example.com\xa0",
    "İ@x.tr",
    "a\x00b@c.d",
    HEX.upper(),
    f"  {HEX}  ",
    HEX[:-1],
    "+1(706)-767-5127",
    "+44 (0)20 7946 0958",
    "0044 20 7946 0958",
    "+39 06 6982 1234",
    "07911 123456",
    "7911 123456",
    "17067675127",
    "447911123456",
    "(706) 767-5127",
    "+44\xa020\xa07946\xa00958",
    "١٢٣٤٥٦٧٨٩",  # Arabic-Indic digits are not digits here
    "+999 1234 5678",
    "F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6",
    " f81d4fae-7dec-11d0-a765-00a0c91e6bf6\n",
    "00000000-0000-0000-0000-000000000000",
    "f81d4fae7dec11d0a76500a0c91e6bf6",
    "x" * 513,
    "a@b.c" + "x" * TEN_MB,
    " " * TEN_MB,
    "é" * TEN_MB,
    "\udc80",
    "a\ud800@b.com",
    "😀@emoji.com",
]


def scalar_view(
    kind: IdentifierType, values: Sequence[object], **options: object
) -> list[tuple[str | None, str | None]]:
    out: list[tuple[str | None, str | None]] = []
    for value in values:
        outcome = normalize(kind, value, **options)  # type: ignore[arg-type]
        if isinstance(outcome, Normalized):
            out.append((outcome.hash, None))
        else:
            out.append((None, outcome.reason.value))
    return out


def batch_view(batch: HashedBatch) -> list[tuple[str | None, str | None]]:
    return list(zip(batch.hashes.to_pylist(), batch.reasons.to_pylist(), strict=True))


def assert_consistent(batch: HashedBatch, expected: list[tuple[str | None, str | None]]) -> None:
    assert batch_view(batch) == expected
    assert batch.hashes.type == pa.string()
    assert batch.reasons.type == pa.string()
    reasons = Counter(reason for _, reason in expected if reason is not None)
    assert {str(k): v for k, v in batch.rejected.items()} == dict(reasons)
    assert batch.accepted == len(expected) - sum(reasons.values())
    assert batch.accepted + batch.rejected_total == len(batch)


OPTIONS = [{}, {"default_country": "GB"}, {"default_country": "US", "raw": True}]


@pytest.mark.parametrize("kind", list(IdentifierType))
@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_batch_equals_scalar_on_mixed_values(
    kind: IdentifierType, options: dict[str, object]
) -> None:
    batch = hash_batch(kind, MIXED, **options)  # type: ignore[arg-type]
    assert_consistent(batch, scalar_view(kind, MIXED, **options))


@pytest.mark.parametrize("kind", list(IdentifierType))
def test_arrow_inputs_of_every_string_layout(kind: IdentifierType) -> None:
    texts = [value for value in MIXED if isinstance(value, str) and len(value) < 1000]
    texts = [value for value in texts if not any(0xD800 <= ord(c) <= 0xDFFF for c in value)]
    expected = scalar_view(kind, texts, default_country="GB")
    string = pa.array(texts, pa.string())
    layouts = [
        string,
        pa.array(texts, pa.large_string()),
        pa.array(texts, pa.string_view()),
        string.dictionary_encode(),
        pa.chunked_array([string.slice(0, 3), string.slice(3, 0), string.slice(3)]),
        pa.array(texts, pa.binary()),
    ]
    for values in layouts:
        assert batch_view(hash_batch(kind, values, default_country="GB")) == expected


def test_sliced_array_keeps_its_own_rows() -> None:
    values = pa.array(["skipped@x.com", "A@B.CO", None, "kept@y.org", "also@skipped.com"])
    batch = hash_batch(IdentifierType.EMAIL, values.slice(1, 3))
    assert batch_view(batch) == scalar_view(IdentifierType.EMAIL, ["A@B.CO", None, "kept@y.org"])


def test_invalid_utf8_in_binary_and_string_arrays_is_invalid_text() -> None:
    raw = pa.array([b"a@b.co", b"\xff\xfe@x.com", None], pa.binary())
    batch = hash_batch(IdentifierType.EMAIL, raw)
    assert batch.reasons.to_pylist() == [None, "invalid_text", "empty"]
    # A string array whose bytes were never validated (as from some foreign buffers).
    unchecked = pa.Array.from_buffers(pa.string(), 2, [None, *raw.buffers()[1:]])
    batch = hash_batch(IdentifierType.EMAIL, unchecked)
    assert batch.reasons.to_pylist() == [None, "invalid_text"]


def test_integer_phone_column() -> None:
    batch = hash_batch(IdentifierType.PHONE, pa.array([17067675127, None], pa.int64()))
    assert batch_view(batch) == scalar_view(IdentifierType.PHONE, ["17067675127", None])


def test_column_that_cannot_hold_text_is_a_user_error() -> None:
    with pytest.raises(UserInputError, match="text column"):
        hash_batch(IdentifierType.EMAIL, pa.array([1.5]))


def test_empty_inputs() -> None:
    inputs: list[object] = [[], pa.array([], pa.string()), pa.chunked_array([], pa.string())]
    for values in inputs:
        batch = hash_batch(IdentifierType.EMAIL, values)
        assert len(batch) == 0
        assert batch.accepted == 0
        assert batch.rejected == {}


def test_counts() -> None:
    values = ["a@b.co", HEX, None, "nope", "", "c@d.ef"]
    batch = hash_batch(IdentifierType.EMAIL, values)
    assert batch.accepted == 3
    assert batch.prehashed == 1
    assert batch.rejected == {RejectReason.EMPTY: 2, RejectReason.NOT_AN_EMAIL: 1}
    assert batch.rejected_total == 3


def test_large_input_keeps_order_across_chunks() -> None:
    values = [f"User{i}@Example{i % 7}.com" if i % 11 else f"bad{i}" for i in range(300_000)]
    chunks = pa.chunked_array([values[:100_000], values[100_000:250_000], values[250_000:]])
    batch = hash_batch(IdentifierType.EMAIL, chunks)
    expected = [
        hashlib.sha256(v.lower().encode()).hexdigest() if "@" in v else None for v in values
    ]
    assert batch.hashes.to_pylist() == expected


def test_duckdb_sha256_equals_hashlib_on_non_ascii() -> None:
    texts = ["üser@exämple.de", "İ@x.tr", "😀", "a\x00b", "中文@例子.公司", "é" * 100_000, ""]
    table = pa.table({"v": pa.array(texts, pa.string())})
    result = _duckdb().from_arrow(table).project("sha256(v) AS h").to_arrow_table()
    assert result.column("h").to_pylist() == [
        hashlib.sha256(text.encode("utf-8")).hexdigest() for text in texts
    ]


def test_a_string_is_not_a_sequence_of_values() -> None:
    with pytest.raises(TypeError):
        hash_batch(IdentifierType.EMAIL, "a@b.co")
