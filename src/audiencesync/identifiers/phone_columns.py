"""Phone numbers over Arrow columns: the rules of :mod:`audiencesync.identifiers.phones`
applied with compute kernels to a whole column of digit strings.

- :func:`whole_e164` is :func:`phones.to_e164` (digits that carry their country code),
  by look-ups in :func:`phones.prefix_table` on each number's first five digits.
- :func:`national_e164` is what the scalar path does with digits and a default country
  (``scalar._with_default_country``), for the countries :func:`phones.national_rules`
  covers; it says which rows it cannot decide, and those go to the parser in Python.

Inputs hold ASCII digits only (or null); results are null where there is no number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from audiencesync.identifiers import phones

_NO_TEXT = pa.scalar(None, pa.string())
_NANP_SHAPE = r"^[2-9][0-9]{2}[2-9]"


def only_digits(strings: pa.Array) -> pa.Array:
    """Each string with every byte that is not an ASCII digit removed (null stays null).

    The same as ``pc.replace_substring_regex(strings, "[^0-9]+", "")`` on UTF-8 (no
    digit is part of a multi-byte character), four times as fast: the kernels run over
    the bytes of the data buffer as one ``uint8`` array and offsets are recounted.
    """
    size = len(strings)
    validity, offsets_buffer, data = strings.buffers()
    if size == 0 or data is None or strings.type != pa.string():
        return pc.replace_substring_regex(strings, r"[^0-9]+", "")
    offsets = pa.Array.from_buffers(
        pa.int32(), size + 1, [None, offsets_buffer], offset=strings.offset
    )
    start, end = offsets[0].as_py(), offsets[size].as_py()
    raw = pa.Array.from_buffers(pa.uint8(), end - start, [None, data], offset=start)
    keep = pc.and_(pc.greater_equal(raw, ord("0")), pc.less_equal(raw, ord("9")))
    kept = raw.filter(keep)
    # kept bytes before each position; a value's new start is the count before its old one.
    before = pa.concat_arrays(
        [pa.array([0], pa.int32()), pc.cumulative_sum(pc.cast(keep, pa.int32()))]
    )
    starts = pc.take(before, pc.subtract(offsets, start))
    if validity is not None:
        # The new array starts at row 0: the validity bitmap must too.
        valid = pc.is_valid(strings)
        validity = valid.buffers()[1] if valid.offset == 0 else None
        if validity is None:
            return pc.replace_substring_regex(strings, r"[^0-9]+", "")
    return pa.Array.from_buffers(
        pa.string(),
        size,
        [validity, starts.buffers()[1], kept.buffers()[1]],
        offset=0,
    )


def holds_any_byte(strings: pa.Array, chars: str) -> bool:
    """Whether any value of ``strings`` holds one of the ASCII ``chars``.

    One pass over the data buffer as ``uint8`` (a few ms for a million values), so that
    a rule for rare rows costs nothing on a column that has none of them.
    """
    size = len(strings)
    _, offsets_buffer, data = strings.buffers()
    if size == 0 or data is None:
        return False
    if strings.type != pa.string():
        return any(pc.any(pc.match_substring(strings, char)).as_py() for char in chars)
    offsets = pa.Array.from_buffers(
        pa.int32(), size + 1, [None, offsets_buffer], offset=strings.offset
    )
    start, end = offsets[0].as_py(), offsets[size].as_py()
    raw = np.frombuffer(data, dtype=np.uint8, count=end - start, offset=start)
    return any(bool((raw == ord(char)).any()) for char in chars)


@dataclass(frozen=True, slots=True)
class _PrefixArrays:
    base: pa.Array  # int32, null where no code starts the digits
    cut: pa.Array  # int8: index of the trunk '0' to delete, 0 for none
    possible: pa.Array  # bool, by base + length


@cache
def _prefix_arrays() -> _PrefixArrays:
    table = phones.prefix_table()
    return _PrefixArrays(
        base=pa.array(table.base, pa.int32()),
        cut=pa.array(table.cut, pa.int8()),
        possible=pa.array(table.possible, pa.bool_()),
    )


def whole_e164(digits: pa.Array) -> pa.Array:
    """:func:`phones.to_e164` of every value (null in, or no number, gives null)."""
    arrays = _prefix_arrays()
    length = pc.binary_length(digits)
    # Outside these lengths to_e164 finds no number; inside, the first five digits exist.
    in_range = pc.and_(
        pc.greater_equal(length, phones.MIN_E164_DIGITS),
        pc.less_equal(length, phones.MAX_E164_DIGITS + 1),
    )
    head = pc.if_else(in_range, pc.utf8_slice_codeunits(digits, 0, phones.PREFIX_DIGITS), _NO_TEXT)
    prefix = pc.cast(head, pa.int32())
    base = pc.take(arrays.base, prefix)
    accepted = pc.fill_null(pc.take(arrays.possible, pc.add(base, length)), False)
    accepted = _nanp_short_checked(digits, length, accepted)
    result = pc.if_else(accepted, digits, _NO_TEXT)
    cut = pc.if_else(accepted, pc.take(arrays.cut, prefix), 0)
    dropped = pc.greater(cut, 0)
    if not pc.any(dropped).as_py():
        return result
    # "+44 (0)20 ...": delete the trunk '0' after the code, on those rows only.
    rows = result.filter(dropped)
    row_cut = cut.filter(dropped)
    for index in pc.unique(row_cut).to_pylist():
        rows = pc.if_else(
            pc.equal(row_cut, index), pc.utf8_replace_slice(rows, index, index + 1, ""), rows
        )
    return pc.replace_with_mask(result, dropped, rows)


def _nanp_short_checked(digits: pa.Array, length: pa.Array, accepted: pa.Array) -> pa.Array:
    """``accepted`` without the +1 numbers shorter than NXX-NXX-XXXX that are not valid
    (:func:`phones.nanp_short_valid`); the regex runs on those few rows only. North
    America's code takes no trunk '0', so these digits are the result."""
    short = pc.and_(
        pc.fill_null(pc.less(length, 1 + phones.NANP_DIGITS), False),
        pc.fill_null(pc.starts_with(digits, phones.NANP_CODE), False),
    )
    short = pc.and_(accepted, short)
    if not pc.any(short).as_py():
        return accepted
    pattern = phones.phone_tables().nanp_short
    if pattern is None:
        return pc.and_(accepted, pc.invert(short))
    valid = pc.match_substring_regex(digits.filter(short), f"^{phones.NANP_CODE}(?:{pattern})$")
    return pc.replace_with_mask(accepted, short, pc.fill_null(valid, False))


@dataclass(frozen=True, slots=True)
class NationalColumn:
    """E.164 digits of the rows decided (null where no number), and the rows left to
    the parser (``undecided``, to be decided in Python; their ``e164`` means nothing)."""

    e164: pa.Array
    undecided: pa.Array


def national_e164(
    digits: pa.Array, national: pa.Array, whole: pa.Array, rules: phones.NationalRules
) -> NationalColumn:
    """The scalar path's reading of digits with a default country, where ``rules`` decide.

    ``national`` masks the rows to read (digits without '+' or a leading '00'); ``whole``
    is :func:`whole_e164` of ``digits``. Other rows come out as ``whole`` and decided.
    """
    length = pc.binary_length(digits)
    undecided = _starts_with_any(digits, rules.undecided)
    # Rule 2: digits starting with the country code.
    with_code = pc.fill_null(pc.starts_with(digits, rules.code), False)
    code_reading = pc.is_in(length, value_set=_lengths(rules.code_reading_lengths))
    if rules.after_code:
        after_code = _starts_with_any(digits, _after_code(rules))
        code_reading = pc.and_(code_reading, pc.invert(after_code))
    # Too short for either reading (a national number is never longer than the digits):
    # no number, whatever the parser does with them.
    shortest = min([*rules.national_lengths, phones.MIN_E164_DIGITS])
    code_reading = pc.or_(code_reading, pc.fill_null(pc.less(length, shortest), False))
    undecided = pc.or_(undecided, pc.and_(with_code, pc.invert(code_reading)))
    undecided = pc.fill_null(pc.and_(pc.fill_null(national, False), undecided), False)
    # Rule 3: the country code, then the digits without their trunk '0' (national rows
    # never start with '00', so trimming zeros drops at most that one).
    number = pc.utf8_ltrim(digits, "0") if rules.drops_zero else digits
    national_length = pc.binary_length(number)
    completed = pc.utf8_replace_slice(number, 0, 0, rules.code)
    accepted = pc.and_(
        pc.and_(pc.fill_null(national, False), pc.invert(with_code)),
        pc.is_in(national_length, value_set=_lengths(rules.national_lengths)),
    )
    if rules.code == phones.NANP_CODE:
        # NXX-NXX-XXXX: to_e164 refuses an area code or exchange starting with 0 or 1,
        # and shorter numbers that are not valid (Canada's 310-XXXX are).
        shaped = pc.or_(
            pc.not_equal(national_length, phones.NANP_DIGITS),
            pc.match_substring_regex(number, _NANP_SHAPE),
        )
        accepted = pc.and_(accepted, pc.fill_null(shaped, False))
        accepted = _nanp_short_checked(completed, pc.binary_length(completed), accepted)
    # Digits that neither make a national number nor start with the country's code are
    # no number of it: never read as another country's (scalar._with_default_country).
    foreign = pc.and_(pc.fill_null(national, False), pc.invert(with_code))
    e164 = pc.if_else(accepted, completed, pc.if_else(foreign, _NO_TEXT, whole))
    return NationalColumn(e164=e164, undecided=undecided)


def region_exit_e164(digits: pa.Array, where: pa.Array, region: str) -> pa.Array | None:
    """``scalar.region_exit_e164`` of the rows ``where`` says (null elsewhere and where
    there is none), or ``None`` when no row starts with the region's prefix."""
    pattern = phones.international_prefix_pattern(region)
    if pattern is None:
        return None
    anchored = f"^(?:{pattern})"
    starts = pc.and_(where, pc.fill_null(pc.match_substring_regex(digits, anchored), False))
    if not pc.any(starts).as_py():
        return None
    rest = pc.replace_substring_regex(digits.filter(starts), anchored, "", max_replacements=1)
    found = pc.replace_with_mask(pa.nulls(len(digits), pa.string()), starts, rest)
    return whole_e164(found)


def _starts_with_any(digits: pa.Array, patterns: Sequence[str]) -> pa.Array:
    """Whether each value starts with a match of one of the (``phonenumbers``) regexes.

    RE2 finds a match wherever Python's ``re`` does for these patterns (no look-arounds
    or back-references: RE2 rejects those, see :func:`rules_usable`). Plain digits, the
    usual case, are compared as such.
    """
    found = pa.repeat(False, len(digits))
    for pattern in patterns:
        if pattern.isdigit():
            match = pc.starts_with(digits, pattern)
        else:
            match = pc.match_substring_regex(digits, f"^(?:{pattern})")
        found = pc.or_(found, pc.fill_null(match, False))
    return found


def _lengths(lengths: frozenset[int]) -> pa.Array:
    return pa.array(sorted(lengths), pa.int32())


def _after_code(rules: phones.NationalRules) -> list[str]:
    """The national prefixes for parsing, right after the country code (digits)."""
    return [
        rules.code + pattern if pattern.isdigit() else f"{rules.code}(?:{pattern})"
        for pattern in rules.after_code
    ]


def rules_usable(rules: phones.NationalRules) -> bool:
    """Whether RE2 accepts every pattern of ``rules`` (else the parser decides them all)."""
    probe = pa.array(["0"], pa.string())
    try:
        _starts_with_any(probe, [*rules.undecided, *_after_code(rules)])
    except pa.ArrowInvalid:
        return False
    return True
