"""Bounds on user-controlled input: how deep JSON may nest, measured without parsing it.

``nesting_depth`` measures text in time linear in its size, in C loops (strings are
dropped by a regular expression, so brackets inside them do not count), so a hostile body
is refused before any recursive parser (json, PyYAML's composer, pydantic) sees it.
"""

from __future__ import annotations

import re
from array import array
from itertools import accumulate

#: How deep JSON request bodies and rule documents may nest (objects and arrays).
MAX_NESTING = 100

_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_OTHERS = bytes(b for b in range(256) if b not in b"[]{}")
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def nesting_depth(data: bytes | str) -> int:
    """The deepest nesting of ``[`` / ``{`` in JSON text (strings ignored)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    brackets = _STRINGS.sub(b"", raw).translate(None, _OTHERS).translate(_STEPS)
    if not brackets:
        return 0
    return max(0, max(accumulate(array("b", brackets))))
