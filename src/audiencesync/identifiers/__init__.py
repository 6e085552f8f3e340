"""Identifiers edge: normalize and SHA-256 emails, phones and mobile ad ids by Snap's rules.

One value: :func:`normalize` (a :class:`Normalized` or a :class:`Rejected` with its
:class:`RejectReason`) or :func:`hash_value`. A column, for the export engine:
:func:`hash_batch` over an Arrow array or a Python sequence, or :func:`prepare_batch`
(normalized, not yet hashed: :data:`HASH_SQL` hashes its rows in DuckDB). Nothing here logs a value
or a hash, and no value, however malformed, makes these functions raise.
"""

from __future__ import annotations

from audiencesync.identifiers.batch import (
    HASH_SQL,
    PREPARED_SCHEMA,
    HashedBatch,
    PreparedBatch,
    hash_batch,
    prepare_batch,
    release_thread_resources,
)
from audiencesync.identifiers.model import Normalized, Rejected, RejectReason
from audiencesync.identifiers.phones import check_default_country
from audiencesync.identifiers.scalar import (
    MAX_IDENTIFIER_CHARS,
    hash_value,
    normalize,
    parse_kind,
)

__all__ = [
    "HASH_SQL",
    "MAX_IDENTIFIER_CHARS",
    "PREPARED_SCHEMA",
    "HashedBatch",
    "Normalized",
    "PreparedBatch",
    "RejectReason",
    "Rejected",
    "check_default_country",
    "hash_batch",
    "hash_value",
    "normalize",
    "parse_kind",
    "prepare_batch",
    "release_thread_resources",
]
