"""Small closed sets shared by every layer (edges included)."""

from __future__ import annotations

from enum import StrEnum


class IdentifierType(StrEnum):
    """A kind of customer identifier an export can match on."""

    EMAIL = "email"
    PHONE = "phone"
    MAID = "maid"  # mobile advertising id: IDFA or GAID
