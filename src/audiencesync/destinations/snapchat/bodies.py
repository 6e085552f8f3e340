"""Request bodies for the users endpoints, built by joining bytes (no per-item objects)."""

from __future__ import annotations

from collections.abc import Sequence

from audiencesync.destinations.snapchat.models import Schema
from audiencesync.errors import UserInputError

HASH_LENGTH = 64
_HEX_DIGITS = b"0123456789abcdef"
_SEPARATOR = '"],["'


def users_body(schema: Schema, hashes: Sequence[str]) -> bytes:
    """``{"users":[{"schema":[S],"data":[["h1"],["h2"],...]}]}`` as UTF-8 bytes.

    Every value must already be a SHA-256 hash written as 64 lowercase hex characters
    (the identifiers package makes them); anything else raises UserInputError before a
    byte is sent, which also keeps the hand-built JSON well-formed.
    """
    if not hashes:
        raise UserInputError("an add or remove request needs at least one identifier.")
    if set(map(len, hashes)) != {HASH_LENGTH}:
        raise _not_hashes()
    flat = "".join(hashes)
    if not flat.isascii() or flat.encode("ascii").translate(None, _HEX_DIGITS):
        raise _not_hashes()
    head = '{"users":[{"schema":["' + schema.value + '"],"data":[["'
    return (head + _SEPARATOR.join(hashes) + '"]]}]}').encode("ascii")


def _not_hashes() -> UserInputError:
    return UserInputError(
        "identifiers sent to Snapchat must be SHA-256 hashes written as 64 lowercase hex "
        "characters: hash them with audiencesync's identifiers package first."
    )
