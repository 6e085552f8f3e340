"""Bodies built from Arrow arrays equal the ones built from lists, byte for byte."""

from __future__ import annotations

import hashlib

import orjson
import pyarrow as pa
import pytest

from audiencesync.destinations.snapchat.bodies import users_body
from audiencesync.destinations.snapchat.models import Schema
from audiencesync.errors import UserInputError

HASHES = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(1000)]


@pytest.mark.parametrize("schema", list(Schema))
def test_arrow_and_list_bodies_are_identical(schema: Schema) -> None:
    from_list = users_body(schema, HASHES)
    assert users_body(schema, pa.array(HASHES)) == from_list
    assert orjson.loads(from_list) == {
        "users": [{"schema": [schema.value], "data": [[h] for h in HASHES]}]
    }


def test_a_sliced_array_sends_only_its_slice() -> None:
    sliced = pa.array(HASHES).slice(100, 50)
    assert users_body(Schema.EMAIL_SHA256, sliced) == users_body(
        Schema.EMAIL_SHA256, HASHES[100:150]
    )


@pytest.mark.parametrize(
    "bad", [[HASHES[0].upper()], [HASHES[0][:63]], [None], [HASHES[0][:-1] + "g"]]
)
def test_arrow_values_that_are_not_hashes_are_refused(bad: list[str | None]) -> None:
    with pytest.raises(UserInputError, match="64 lowercase hex"):
        users_body(Schema.EMAIL_SHA256, pa.array([*HASHES[:3], *bad], pa.string()))
