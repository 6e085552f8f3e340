"""Normalize and hash a whole column at once, for the export engine.

The rules are those of :mod:`audiencesync.identifiers.scalar`; this module applies them
with Arrow compute kernels to every value that is plain ASCII (nearly all of them) and
hands the rest to the scalar code, so both give the same answer for every value.
SHA-256 runs in an in-process DuckDB over the Arrow array without copying it.

Non-ASCII values go to Python because lowercasing and trimming are only unambiguous in
ASCII: Arrow, DuckDB and Python each follow their own Unicode tables. Phones are read by
:mod:`audiencesync.identifiers.phone_columns`; national numbers it cannot decide (a
default country with complex dialling rules, or ambiguous digits) go to Python, where
``phonenumbers`` reads them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from audiencesync import duck
from audiencesync.errors import UserInputError
from audiencesync.identifiers import phone_columns, phones
from audiencesync.identifiers.model import REASONS, Normalized, RejectReason
from audiencesync.identifiers.scalar import (
    ASCII_WHITESPACE,
    DOUBLE_ZERO,
    MAX_IDENTIFIER_CHARS,
    NANP_EXIT,
    PLACEHOLDER_HASHES,
    ZERO_MAID,
    _normalize,
    parse_kind,
)
from audiencesync.types import IdentifierType

# RE2 patterns over values already trimmed, lowercased and known to be ASCII; they
# accept exactly what the scalar module's patterns accept on such values.
# Whitespace and control characters (\x00-\x1f, \x7f) are no part of an address.
_NOT_SPACE_OR_AT = r"[^@\x00-\x1f\x7f <>]"
_DOMAIN_CHAR = r"[^@\x00-\x1f\x7f <>\";,()]"
_EMAIL = rf"^{_NOT_SPACE_OR_AT}+@{_DOMAIN_CHAR}*\.{_DOMAIN_CHAR}*$"
_MAILTO = "mailto:"
_HEX64 = r"^[0-9a-f]{64}$"
_HEX32 = r"^[0-9a-f]{32}$"
_UUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_PLUS_FIRST = r"^[^0-9+]*\+"
# scalar.strip_extension on lowered ASCII: cut at the first marker after a digit.
_MARKER = "[x#,;]|ext|app|durchwahl|poste|anexo|int"
_EXTENSION = rf"(?s)^([^0-9]*[0-9].*?)(?:{_MARKER}).*$"
#: the first characters of every marker: a column holding none has no extension.
_MARKER_BYTES = "x#,;apdi"

_CODE = {reason: index for index, reason in enumerate(REASONS)}
_REASON_NAMES = pa.array([reason.value for reason in REASONS], pa.string())
_NO_CODE = pa.scalar(None, pa.int8())

#: DuckDB hashes slices of this many rows in parallel (its row-group size).
_SLICE_ROWS = 25000

_local = threading.local()


@dataclass(frozen=True, slots=True)
class HashedBatch:
    """Hashes of a column of identifiers, in input order.

    ``hashes`` (Arrow ``string``) holds the 64-hex SHA-256 of each accepted value and
    null where the value was rejected; ``reasons`` (Arrow ``string``) holds the
    :class:`RejectReason` code of each rejected value and null where it was accepted.
    Both have the input's length. ``accepted`` counts accepted values, ``prehashed`` those
    of them taken as already hashed, ``rejected`` the rejects by reason (non-zero only).
    """

    kind: IdentifierType
    hashes: pa.Array
    reasons: pa.Array
    accepted: int
    prehashed: int
    rejected: Mapping[RejectReason, int]

    def __len__(self) -> int:
        return len(self.hashes)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


def hash_batch(
    kind: IdentifierType | str,
    values: pa.Array | pa.ChunkedArray | Sequence[str | None],
    *,
    default_country: str | None = None,
    raw: bool = False,
) -> HashedBatch:
    """Normalize and hash every value of ``values`` as :func:`normalize` would.

    ``values`` is an Arrow string array (or chunked array; large strings, string views,
    dictionary-encoded strings, binary and integer columns are converted), or a Python
    sequence of ``str`` / ``None``. No value makes this raise: bad ones are rejected
    with a reason. Raises :class:`UserInputError` for an unknown ``kind`` or
    ``default_country``, or a column type that cannot hold text.
    """
    identifier_type, prepared = _prepare_all(kind, values, default_country, raw)
    codes, rejected = _codes(prepared)
    return HashedBatch(
        kind=identifier_type,
        hashes=_hash(prepared),
        reasons=pc.take(_REASON_NAMES, codes),
        accepted=codes.null_count,
        prehashed=sum(chunk.prehashed for chunk in prepared),
        rejected=rejected,
    )


#: The columns of :attr:`PreparedBatch.rows`: ``v`` the normalized text, ``h`` whether
#: its hash is ``sha256(v)``, ``p`` whether ``v`` is a hash already, ``g`` the hash
#: computed in Python for the rare values only Python can decide.
PREPARED_SCHEMA = pa.schema(
    [("v", pa.string()), ("h", pa.bool_()), ("p", pa.bool_()), ("g", pa.string())]
)

#: The DuckDB expression of a prepared row's hash (64 lowercase hex characters).
HASH_SQL = "CASE WHEN h THEN sha256(v) WHEN p THEN v ELSE g END"


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """A column's accepted values, normalized but not yet hashed, and its rejects.

    For callers that hash in DuckDB themselves, where the hashes are used (the export
    engine diffs them against its snapshot in the same query, so 64-character hashes of
    unchanged values are never copied out). ``rows`` holds only the accepted values, in
    :data:`PREPARED_SCHEMA`; :data:`HASH_SQL` over those columns gives exactly the
    hashes :func:`hash_batch` gives. ``reasons`` has the input's length, as in
    :class:`HashedBatch`.
    """

    kind: IdentifierType
    rows: pa.Table
    reasons: pa.Array
    accepted: int
    prehashed: int
    rejected: Mapping[RejectReason, int]


def prepare_batch(
    kind: IdentifierType | str,
    values: pa.Array | pa.ChunkedArray | Sequence[str | None],
    *,
    default_country: str | None = None,
    raw: bool = False,
) -> PreparedBatch:
    """Normalize ``values`` as :func:`hash_batch` does, and stop short of hashing."""
    identifier_type, prepared = _prepare_all(kind, values, default_country, raw)
    codes, rejected = _codes(prepared)
    accepted_rows = [
        chunk.batch.filter(
            pc.or_(
                pc.or_(chunk.batch.column("h"), chunk.batch.column("p")),
                pc.is_valid(chunk.batch.column("g")),
            )
        )
        for chunk in prepared
    ]
    return PreparedBatch(
        kind=identifier_type,
        rows=pa.Table.from_batches(accepted_rows, PREPARED_SCHEMA),
        reasons=pc.take(_REASON_NAMES, codes),
        accepted=codes.null_count,
        prehashed=sum(chunk.prehashed for chunk in prepared),
        rejected=rejected,
    )


def _prepare_all(
    kind: IdentifierType | str,
    values: pa.Array | pa.ChunkedArray | Sequence[str | None],
    default_country: str | None,
    raw: bool,
) -> tuple[IdentifierType, list[_Prepared]]:
    identifier_type = parse_kind(kind)
    region = phones.check_default_country(default_country) if default_country else None
    prepared = [
        _prepare(identifier_type, chunk, invalid, region, raw)
        for chunk, invalid in _string_chunks(values, identifier_type)
    ]
    return identifier_type, [chunk for chunk in prepared if chunk.batch.num_rows]


def _codes(prepared: list[_Prepared]) -> tuple[pa.Array, dict[RejectReason, int]]:
    """Every row's reason code (null where accepted), and the rejects by reason."""
    codes = _concat([chunk.codes for chunk in prepared], pa.int8())
    counted = {
        REASONS[item["values"].as_py()]: item["counts"].as_py()
        for item in pc.value_counts(codes.drop_null())
    }
    return codes, {reason: counted[reason] for reason in REASONS if reason in counted}


def _concat(arrays: list[pa.Array], arrow_type: pa.DataType) -> pa.Array:
    if not arrays:
        return pa.array([], arrow_type)
    if len(arrays) == 1:
        return arrays[0]
    return pa.concat_arrays(arrays)


# --- input: whatever the caller has, as Arrow string arrays ---------------------------


def _string_chunks(
    values: pa.Array | pa.ChunkedArray | Sequence[str | None], kind: IdentifierType
) -> list[tuple[pa.Array, pa.Array | None]]:
    """``(strings, invalid mask or None)`` per chunk; invalid rows hold null strings."""
    if isinstance(values, pa.ChunkedArray):
        return [_string_array(chunk, kind) for chunk in values.chunks]
    if isinstance(values, pa.Array):
        return [_string_array(values, kind)]
    if isinstance(values, str | bytes):
        raise TypeError("hash_batch() takes a sequence of values, not one string")
    return [_from_python(values)]


def _string_array(array: pa.Array, kind: IdentifierType) -> tuple[pa.Array, pa.Array | None]:
    arrow_type = array.type
    if pa.types.is_dictionary(arrow_type):
        return _string_array(array.dictionary_decode(), kind)
    if pa.types.is_string(arrow_type):
        return array, None
    if (
        pa.types.is_large_string(arrow_type)
        or pa.types.is_string_view(arrow_type)
        or pa.types.is_null(arrow_type)
        or pa.types.is_integer(arrow_type)
    ):
        return array.cast(pa.string()), None
    if (
        pa.types.is_binary(arrow_type)
        or pa.types.is_large_binary(arrow_type)
        or pa.types.is_binary_view(arrow_type)
    ):
        try:
            return array.cast(pa.string()), None
        except pa.ArrowInvalid:
            texts = [_decode(item) for item in array.to_pylist()]
            return _from_python(texts)
    raise UserInputError(
        f"a column of type {arrow_type} cannot hold {kind} identifiers: map a text column."
    )


def _from_python(values: Sequence[Any]) -> tuple[pa.Array, pa.Array | None]:
    try:
        return pa.array(values, pa.string()), None
    except (pa.ArrowException, UnicodeEncodeError, TypeError, ValueError):
        # A lone surrogate or a non-string somewhere: find them one by one.
        pass
    good = [value if _is_text(value) else None for value in values]
    invalid = [value is not None and not _is_text(value) for value in values]
    return pa.array(good, pa.string()), pa.array(invalid, pa.bool_())


def _is_text(value: object) -> bool:
    if not isinstance(value, str):
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _decode(item: bytes | None) -> str | None:
    # surrogateescape keeps undecodable bytes as lone surrogates: rejected as invalid_text.
    return None if item is None else item.decode("utf-8", "surrogateescape")


# --- the vectorized rules -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Prepared:
    """One chunk, decided: what DuckDB must hash or pass through, and the reason codes."""

    batch: pa.RecordBatch  # v: text; h: hash v; p: v is a hash already; g: hash from Python
    codes: pa.Array  # int8 index into REASONS, null where accepted
    prehashed: int
    python: bool  # whether column g holds any hash


def _prepare(
    kind: IdentifierType,
    values: pa.Array,
    invalid: pa.Array | None,
    region: str | None,
    raw: bool,
) -> _Prepared:
    ascii_only = pc.string_is_ascii(values)
    to_python = pc.invert(pc.fill_null(ascii_only, True))
    trimmed = pc.ascii_trim(values, ASCII_WHITESPACE)
    length = pc.binary_length(trimmed)
    empty = pc.fill_null(pc.equal(length, 0), True)
    too_long = pc.fill_null(pc.greater(length, MAX_IDENTIFIER_CHARS), False)
    ordinary = pc.and_(pc.fill_null(ascii_only, False), pc.invert(pc.or_(empty, too_long)))
    # Only `ordinary` rows of `lowered` mean anything below; masks say which rows count,
    # so that no string column is copied for the common case.
    lowered = pc.ascii_lower(trimmed)
    prehashed = _prehashed(lowered, length, ordinary, raw)
    placeholder = _placeholders(lowered, prehashed)
    if placeholder is not None:
        prehashed = pc.and_(prehashed, pc.invert(placeholder))
    plain = pc.and_(ordinary, pc.invert(prehashed))
    if placeholder is not None:
        plain = pc.and_(plain, pc.invert(placeholder))

    if kind is IdentifierType.EMAIL:
        texts, accepted, reason, more_python = _emails(lowered, plain)
    elif kind is IdentifierType.PHONE:
        texts, accepted, reason, more_python = _phones(lowered, plain, region)
        texts = pc.if_else(prehashed, lowered, texts)
    else:
        texts, accepted, reason, more_python = _maids(lowered, length, plain)
    if more_python is not None:
        to_python = pc.or_(to_python, more_python)
    accepted = pc.and_(pc.and_(plain, accepted), pc.invert(to_python))

    if placeholder is not None:
        reason = pc.if_else(placeholder, _int8(RejectReason.PLACEHOLDER_HASH), reason)
    codes = pc.case_when(
        pc.make_struct(to_python, empty, too_long, prehashed, accepted, field_names=list("abcde")),
        _NO_CODE,
        _int8(RejectReason.EMPTY),
        _int8(RejectReason.TOO_LONG),
        _NO_CODE,
        _NO_CODE,
        reason,
    )
    prehashed_count = int(pc.sum(prehashed).as_py() or 0)
    python_hashes = pa.nulls(len(values), pa.string())
    if pc.any(to_python).as_py():
        codes, python_hashes, python_prehashed = _in_python(
            kind, values, to_python, codes, python_hashes, region, raw
        )
        prehashed_count += python_prehashed
    if invalid is not None:
        codes = pc.if_else(invalid, _int8(RejectReason.INVALID_TEXT), codes)
    batch = pa.record_batch([texts, accepted, prehashed, python_hashes], names=["v", "h", "p", "g"])
    return _Prepared(
        batch=batch,
        codes=codes,
        prehashed=prehashed_count,
        python=python_hashes.null_count < len(values),
    )


def _int8(reason: RejectReason) -> pa.Scalar:
    return pa.scalar(_CODE[reason], pa.int8())


def _prehashed(lowered: pa.Array, length: pa.Array, ordinary: pa.Array, raw: bool) -> pa.Array:
    """Which rows are 64 hex characters (never, when the column is declared raw)."""
    nowhere = pa.repeat(False, len(lowered))
    if raw:
        return nowhere
    # The pattern runs only on the few rows of the right length.
    right_length = pc.and_(ordinary, pc.fill_null(pc.equal(length, 64), False))
    if not pc.any(right_length).as_py():
        return nowhere
    rows = lowered.filter(right_length)
    is_hex = pc.fill_null(pc.match_substring_regex(rows, _HEX64), False)
    return pc.replace_with_mask(nowhere, right_length, is_hex)


def _placeholders(lowered: pa.Array, prehashed: pa.Array) -> pa.Array | None:
    """Which pre-hashed rows are :data:`scalar.PLACEHOLDER_HASHES` (``None``: none)."""
    if not pc.any(prehashed).as_py():
        return None
    found = pc.and_(prehashed, pc.fill_null(pc.is_in(lowered, value_set=_PLACEHOLDERS), False))
    return found if pc.any(found).as_py() else None


_PLACEHOLDERS = pa.array(sorted(PLACEHOLDER_HASHES), pa.string())


_KindRules = tuple[pa.Array, pa.Array, pa.Array | pa.Scalar, pa.Array | None]
"""(texts to hash, accepted, reject reason code, rows only Python can decide or None)"""


def _emails(lowered: pa.Array, plain: pa.Array) -> _KindRules:
    # "<a@x.com>", "mailto:a@x.com": rewritten on those rows only (scalar.unwrap_email).
    accepted: pa.Array
    if not phone_columns.holds_any_byte(lowered, "<:"):
        accepted = pc.fill_null(pc.match_substring_regex(lowered, _EMAIL), False)
        return lowered, accepted, _int8(RejectReason.NOT_AN_EMAIL), None
    wrapped = pc.and_(
        plain,
        pc.fill_null(pc.or_(pc.starts_with(lowered, "<"), pc.starts_with(lowered, _MAILTO)), False),
    )
    texts = lowered
    if pc.any(wrapped).as_py():
        texts = pc.replace_with_mask(lowered, wrapped, _unwrap_emails(lowered.filter(wrapped)))
    accepted = pc.fill_null(pc.match_substring_regex(texts, _EMAIL), False)
    # "mailto:" is removed once at most: one left over is no address.
    left_over = pc.fill_null(pc.starts_with(texts, _MAILTO), False)
    accepted = pc.and_(accepted, pc.invert(left_over))
    return texts, accepted, _int8(RejectReason.NOT_AN_EMAIL), None


def _unwrap_emails(rows: pa.Array) -> pa.Array:
    """:func:`scalar.unwrap_email` of each (ASCII, trimmed, lowercased) row."""
    stripped = pc.starts_with(rows, _MAILTO)
    rows = _strip_mailto(rows)
    bracketed = pc.and_(
        pc.greater_equal(pc.binary_length(rows), 2),
        pc.and_(pc.starts_with(rows, "<"), pc.ends_with(rows, ">")),
    )
    inner = pc.ascii_trim(pc.utf8_slice_codeunits(rows, 1, -1), ASCII_WHITESPACE)
    inner = pc.if_else(stripped, inner, _strip_mailto(inner))
    return pc.if_else(bracketed, inner, rows)


def _strip_mailto(rows: pa.Array) -> pa.Array:
    # scalar._strip_mailto: the URI's query ("?subject=...") goes too.
    after = pc.replace_substring_regex(
        pc.utf8_slice_codeunits(rows, len(_MAILTO)), r"(?s)\?.*$", "", max_replacements=1
    )
    after = pc.ascii_trim(after, ASCII_WHITESPACE)
    return pc.if_else(pc.starts_with(rows, _MAILTO), after, rows)


def _maids(lowered: pa.Array, length: pa.Array, plain: pa.Array) -> _KindRules:
    # 32 hex digits without hyphens: written 8-4-4-4-12 (on those rows only).
    texts = lowered
    unhyphenated = pc.and_(plain, pc.fill_null(pc.equal(length, 32), False))
    if pc.any(unhyphenated).as_py():
        rows = lowered.filter(unhyphenated)
        is_hex = pc.fill_null(pc.match_substring_regex(rows, _HEX32), False)
        parts = [
            pc.utf8_slice_codeunits(rows, start, stop)
            for start, stop in ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))
        ]
        hyphenated = pc.if_else(is_hex, pc.binary_join_element_wise(*parts, "-"), rows)
        texts = pc.replace_with_mask(lowered, unhyphenated, hyphenated)
    accepted = pc.and_(
        pc.fill_null(pc.match_substring_regex(texts, _UUID), False),
        pc.fill_null(pc.not_equal(texts, ZERO_MAID), False),
    )
    return texts, accepted, _int8(RejectReason.MAID_INVALID), None


def _phones(lowered: pa.Array, plain: pa.Array, region: str | None) -> _KindRules:
    # Rows that are not `plain` are decided by the caller: what these give there is unused.
    lowered = _strip_extensions(lowered, plain)
    digits = phone_columns.only_digits(lowered)
    no_digits = pc.fill_null(pc.equal(pc.binary_length(digits), 0), False)
    plus = _plus_first(lowered)
    # With a default country, its own international prefix first (scalar order).
    region_exit = (
        phone_columns.region_exit_e164(digits, pc.invert(plus), region)
        if region is not None
        else None
    )
    by_region = pa.repeat(False, len(digits)) if region_exit is None else pc.is_valid(region_exit)
    double_zero = pc.and_(
        pc.fill_null(pc.starts_with(digits, DOUBLE_ZERO), False), pc.invert(by_region)
    )
    # "011" is read as an access prefix only after a '+' (scalar.NANP_EXIT).
    nanp_exit = pc.and_(pc.fill_null(pc.starts_with(digits, NANP_EXIT), False), plus)
    international = pc.or_(pc.or_(pc.or_(plus, double_zero), nanp_exit), by_region)
    whole = _drop_prefix(digits, double_zero, len(DOUBLE_ZERO))
    whole = _drop_prefix(whole, pc.and_(nanp_exit, pc.invert(double_zero)), len(NANP_EXIT))
    e164 = phone_columns.whole_e164(whole)
    if region_exit is not None:
        e164 = pc.if_else(by_region, region_exit, e164)
    more_python = None
    if region is None:
        # No country in the value and none given: never guessed, whatever the digits.
        e164 = pc.if_else(international, e164, _NO_TEXT)
        reason = pc.if_else(
            international,
            _int8(RejectReason.PHONE_INVALID),
            _int8(RejectReason.PHONE_NO_COUNTRY_CODE),
        )
    else:
        # Digits without a country code, read with the default country's dialling rules:
        # by Arrow kernels where those are a few fixed rules, else by phonenumbers.
        national = pc.and_(plain, pc.invert(pc.or_(international, no_digits)))
        rules = _national_rules(region)
        if rules is None:
            more_python = national
        else:
            column = phone_columns.national_e164(digits, national, e164, rules)
            e164, more_python = column.e164, column.undecided
        reason = _int8(RejectReason.PHONE_INVALID)
    reason = pc.if_else(no_digits, _int8(RejectReason.PHONE_INVALID), reason)
    return e164, pc.is_valid(e164), reason, more_python


_NO_TEXT = pa.scalar(None, pa.string())


def _drop_prefix(digits: pa.Array, where: pa.Array, size: int) -> pa.Array:
    """``digits`` without their first ``size`` characters on the rows ``where`` says."""
    if not pc.any(where).as_py():
        return digits
    return pc.replace_with_mask(digits, where, pc.utf8_slice_codeunits(digits.filter(where), size))


def _strip_extensions(lowered: pa.Array, plain: pa.Array) -> pa.Array:
    """:func:`scalar.strip_extension` of each row, on the rows holding a marker."""
    if not phone_columns.holds_any_byte(lowered, _MARKER_BYTES):
        return lowered
    marked = pc.and_(plain, pc.fill_null(pc.match_substring_regex(lowered, _MARKER), False))
    if not pc.any(marked).as_py():
        return lowered
    rows = pc.replace_substring_regex(lowered.filter(marked), _EXTENSION, r"\1")
    return pc.replace_with_mask(lowered, marked, rows)


def _plus_first(lowered: pa.Array) -> pa.Array:
    """Whether the first '+'-or-digit of each value is '+' (a regex only where unsure)."""
    starts = pc.fill_null(pc.starts_with(lowered, "+"), False)
    unsure = pc.and_(pc.invert(starts), pc.fill_null(pc.match_substring(lowered, "+"), False))
    if not pc.any(unsure).as_py():
        return starts
    found = pc.match_substring_regex(lowered.filter(unsure), _PLUS_FIRST)
    return pc.replace_with_mask(starts, unsure, pc.fill_null(found, False))


@cache
def _national_rules(region: str) -> phones.NationalRules | None:
    rules = phones.national_rules(region)
    return rules if rules is not None and phone_columns.rules_usable(rules) else None


# --- the rare values, in Python -------------------------------------------------------


def _in_python(
    kind: IdentifierType,
    values: pa.Array,
    mask: pa.Array,
    codes: pa.Array,
    hashes: pa.Array,
    region: str | None,
    raw: bool,
) -> tuple[pa.Array, pa.Array, int]:
    """Codes and hashes with the masked rows decided by the scalar rules."""
    # Through binary: a string array read from elsewhere may hold invalid UTF-8.
    texts = [_decode(item) for item in values.filter(mask).cast(pa.binary()).to_pylist()]
    row_codes: list[int | None] = []
    row_hashes: list[str | None] = []
    prehashed = 0
    for text in texts:
        outcome = _normalize(kind, text, region, raw)
        if isinstance(outcome, Normalized):
            row_codes.append(None)
            row_hashes.append(outcome.hash)
            prehashed += outcome.prehashed
        else:
            row_codes.append(_CODE[outcome.reason])
            row_hashes.append(None)
    codes = pc.replace_with_mask(codes, mask, pa.array(row_codes, pa.int8()))
    hashes = pc.replace_with_mask(hashes, mask, pa.array(row_hashes, pa.string()))
    return codes, hashes, prehashed


# --- SHA-256 in DuckDB ----------------------------------------------------------------


def _hash(prepared: list[_Prepared]) -> pa.Array:
    """The hash column of every prepared chunk, in order, computed by DuckDB.

    Chunks are cut into slices (zero copy) so DuckDB's threads share the work; DuckDB
    keeps insertion order, so row i of the result is row i of the input.
    """
    slices = [
        chunk.batch.slice(start, _SLICE_ROWS)
        for chunk in prepared
        for start in range(0, chunk.batch.num_rows, _SLICE_ROWS)
    ]
    if not slices:
        return pa.array([], pa.string())
    # Each branch is left out when no row needs it: DuckDB is faster without them.
    sql = "CASE WHEN h THEN sha256(v)"
    if any(chunk.prehashed for chunk in prepared):
        sql += " WHEN p THEN v"
    if any(chunk.python for chunk in prepared):
        sql += " ELSE g"
    relation = _duckdb().from_arrow(pa.Table.from_batches(slices)).project(f"{sql} END AS hash")
    column = relation.to_arrow_table().column("hash")
    hashes = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return hashes if hashes.type == pa.string() else hashes.cast(pa.string())


def _duckdb() -> duckdb.DuckDBPyConnection:
    # One in-memory connection per thread: a DuckDB connection is not shared safely.
    connection: duckdb.DuckDBPyConnection | None = getattr(_local, "connection", None)
    if connection is None:
        connection = duck.connect(preserve_insertion_order=True)
        _local.connection = connection
    return connection


def release_thread_resources() -> None:
    """Close this thread's DuckDB connection (its memory goes back to the system).

    The export engine calls it once a run has hashed everything; the next call to
    :func:`hash_batch` on this thread opens a new connection.
    """
    connection: duckdb.DuckDBPyConnection | None = getattr(_local, "connection", None)
    if connection is not None:
        connection.close()
        _local.connection = None
