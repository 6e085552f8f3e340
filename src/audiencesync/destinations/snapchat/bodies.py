"""Request bodies for the users endpoints, built by joining bytes (no per-item objects)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from audiencesync.destinations.base import Hashes
from audiencesync.destinations.snapchat.models import Schema
from audiencesync.errors import UserInputError

HASH_LENGTH = 64
_HEX_DIGITS = b"0123456789abcdef"
_SEPARATOR = '"],["'


def users_body(schema: Schema, hashes: Hashes) -> bytes:
    """``{"users":[{"schema":[S],"data":[["h1"],["h2"],...]}]}`` as UTF-8 bytes.

    Every value must already be a SHA-256 hash written as 64 lowercase hex characters
    (the identifiers package makes them); anything else raises UserInputError before a
    byte is sent, which also keeps the hand-built JSON well-formed.
    """
    if not len(hashes):
        raise UserInputError("an add or remove request needs at least one identifier.")
    if isinstance(hashes, pa.Array):
        return _arrow_body(schema, hashes)
    if set(map(len, hashes)) != {HASH_LENGTH}:
        raise _not_hashes()
    flat = "".join(hashes)
    if not flat.isascii() or flat.encode("ascii").translate(None, _HEX_DIGITS):
        raise _not_hashes()
    head = '{"users":[{"schema":["' + schema.value + '"],"data":[["'
    return (head + _SEPARATOR.join(hashes) + '"]]}]}').encode("ascii")


def _arrow_body(schema: Schema, hashes: pa.Array) -> bytes:
    """The same body from an Arrow string array, written once into one NumPy buffer."""
    if hashes.type != pa.string():
        hashes = hashes.cast(pa.string())
    if hashes.null_count or not pc.all(pc.match_substring_regex(hashes, "^[0-9a-f]{64}$")).as_py():
        raise _not_hashes()
    count = len(hashes)
    offsets = np.frombuffer(
        hashes.buffers()[1], dtype=np.int32, count=count + 1, offset=hashes.offset * 4
    )
    data = np.frombuffer(hashes.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    head = ('{"users":[{"schema":["' + schema.value + '"],"data":[["').encode("ascii")
    tail = b'"]]}]}'
    separator = _SEPARATOR.encode("ascii")
    stride = HASH_LENGTH + len(separator)
    end = len(head) + count * stride - len(separator)
    # The tail is longer than a separator, so the rows fit before the buffer's end; the
    # last row's separator is then overwritten by the tail.
    body = np.empty(end + len(tail), dtype=np.uint8)
    body[: len(head)] = np.frombuffer(head, dtype=np.uint8)
    grid = body[len(head) : len(head) + count * stride].reshape(count, stride)
    grid[:, :HASH_LENGTH] = data.reshape(count, HASH_LENGTH)
    grid[:, HASH_LENGTH:] = np.frombuffer(separator, dtype=np.uint8)
    body[end:] = np.frombuffer(tail, dtype=np.uint8)
    return body.tobytes()


def _not_hashes() -> UserInputError:
    return UserInputError(
        "identifiers sent to Snapchat must be SHA-256 hashes written as 64 lowercase hex "
        "characters: hash them with audiencesync's identifiers package first."
    )
