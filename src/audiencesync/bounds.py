"""Bounds on user-controlled input: how deep JSON may nest, measured without parsing it.

``nesting_depth`` measures text in time linear in its size, in C loops (strings are
dropped by a regular expression, so brackets inside them do not count), so a hostile body
is refused before any recursive parser (json, PyYAML's composer, pydantic) sees it.
"""

from __future__ import annotations

import json
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


#: A lone UTF-16 surrogate (U+D800 to U+DFFF): half of a character, never text by itself.
_SURROGATE = re.compile("[\ud800-\udfff]")
#: A JSON escape of a surrogate (``\ud800``): the body may decode to a lone one.
_JSON_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
#: A surrogate encoded as UTF-8 (ED A0..BF ..), raw or percent-encoded: never valid UTF-8.
_ENCODED_SURROGATE = re.compile(rb"\xed[\xa0-\xbf]|%ed%[ab][0-9a-f]", re.IGNORECASE)


def holds_surrogate(text: str) -> bool:
    """Whether ``text`` holds a lone UTF-16 surrogate, which no database or page can encode."""
    return _SURROGATE.search(text) is not None


def json_holds_surrogate(body: bytes) -> bool:
    """Whether a JSON body decodes to a string (a key or a value) holding a lone surrogate.

    Only a body with a surrogate escape is decoded (a valid pair decodes to one character
    and passes); a body that is not JSON is left to the route, which says why.
    """
    if _JSON_SURROGATE_ESCAPE.search(body) is None:
        return False
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return False
    stack: list[object] = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if holds_surrogate(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def encodes_surrogate(raw: bytes) -> bool:
    """Whether a query string or a form body holds a surrogate encoded as UTF-8 bytes."""
    return _ENCODED_SURROGATE.search(raw) is not None


def printable(value: object) -> object:
    """``value`` with every lone surrogate in its strings replaced by U+FFFD, so a row
    stored before surrogates were refused can still be shown (dicts and lists too)."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {printable(k): printable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [printable(v) for v in value]
    return value
