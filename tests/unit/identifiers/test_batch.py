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
    "١٢٣٤٥٦٧٨٩",  # Arabic-Indic digits: read as 123456789
    "+٤٤ ٧٩١١ ١٢٣٤٥٦",
    "+1 706-767-5127 ext. 123",
    "+1 706-767-5127 x123",
    "tel:+1-706-767-5127;ext=123",
    "(706) 767-5127 #9",
    "+0044 20 7946 0958",
    "+011 44 20 7946 0958",
    "011 44 20 7946 0958",
    "0113 496 0000",
    "(917) 555-1234",
    "\ufeffPerson@email.com",
    "per\u200bson@email.com",
    "<Person@email.com>",
    "mailto:person@email.com",
    " <mailto:A@x.com> ",
    "Name <a@x.com>",
    "<a@x.com",
    "F81D4FAE7DEC11D0A76500A0C91E6BF6",
    "0" * 32,
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
    # The review of issue 12: each was read wrongly, on one path or both.
    "0011 44 20 7946 0958",
    "0011 298 123456",
    "001 45 3212 3456",
    "0113965772056",
    "+1 129 812 3456",
    "129 812 3456",
    "+49 30 1234567, 12",
    "+49 30 1234567 App. 12",
    "+49 30 123456 Durchwahl 7",
    "+33 1 23 45 67 89 poste 12",
    "mailto:a@x.com?subject=hi",
    "<mailto:a@x.com?cc=b@y.com>",
    "a@x.com;",
    '"a@x.com"',
    "(a@x.com)",
    '"a<b"@x.com',
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


OPTIONS = [
    {},
    {"default_country": "GB"},
    {"default_country": "US", "raw": True},
    {"default_country": "AU"},
    {"default_country": "TH"},
]


@pytest.mark.parametrize(
    ("kind", "values", "sent"),
    [
        (
            IdentifierType.PHONE,
            ["+1 706-767-5127 ext. 123", "+1 706 767 5127 x12", "+1-706-767-5127;ext=1",
             "+1 706 767 5127 #4", "+011 1 706 767 5127", "+001 706 767 5127",
             "+1 706 767 5127, 9", "+1 706 767 5127 app 9"],
            "17067675127",
        ),
        (IdentifierType.PHONE, ["+44 (0)20 7946 0958", "+0044 (0)20 7946 0958"], "442079460958"),
        (
            IdentifierType.EMAIL,
            ["<Person@email.com>", "mailto:Person@email.com", " < mailto:person@email.com > ",
             "mailto:<person@email.com>"],
            "person@email.com",
        ),
        (
            IdentifierType.MAID,
            ["F81D4FAE7DEC11D0A76500A0C91E6BF6", " f81d4fae7dec11d0a76500a0c91e6bf6 "],
            "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
        ),
    ],
)  # fmt: skip
def test_repairable_ascii_values_are_repaired_by_the_column_kernels(
    kind: IdentifierType, values: list[str], sent: str
) -> None:
    batch = hash_batch(kind, values)
    assert batch.hashes.to_pylist() == [hashlib.sha256(sent.encode()).hexdigest()] * len(values)
    assert batch.accepted == len(values)


def test_national_phones_in_a_column_are_not_guessed() -> None:
    values = ["(917) 555-1234", "(620) 293-9343", "17067675127", "447911123456", "0113 496 0000"]
    batch = hash_batch(IdentifierType.PHONE, values)
    assert batch.accepted == 0
    assert batch.reasons.to_pylist() == ["phone_no_country_code"] * len(values)
    with_country = hash_batch(IdentifierType.PHONE, values[:3], default_country="US")
    assert with_country.accepted == 3


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
