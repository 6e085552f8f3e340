"""The redaction filter keeps tokens and personal data out of every log line."""

from __future__ import annotations

import logging

import pytest

from audiencesync.logs import RedactingFilter, redact

SECRETS = [
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc.def",
    "refresh_token=r3fr3sh-T0ken-value",
    '{"access_token": "acc-123456789"}',
    "client_secret: s3cr3t-value",
    "person@email.com",
    "b375b7bbddb3de3298fbc7641063d9f03a38e118aa4480c8ab9f58740982e8bd",
    "+1 (706) 767-5127",
    "F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6",
]


@pytest.mark.parametrize("text", SECRETS)
def test_redact_removes_the_sensitive_part(text: str) -> None:
    cleaned = redact(text)
    for part in (
        "eyJhbG",
        "r3fr3sh",
        "acc-123",
        "s3cr3t",
        "person@",
        "b375b7bb",
        "767",
        "F81D4FAE",
    ):
        assert part not in cleaned


def test_the_filter_rewrites_records_with_arguments(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("audiencesync.test")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="audiencesync.test"):
        logger.info("POST /v1/segments/%s/users for %s", "123", "someone@example.org")
    logger.filters.clear()
    assert "someone@example.org" not in caplog.text
    assert "/v1/segments/123/users" in caplog.text


def test_ids_stay_readable_but_ad_ids_do_not() -> None:
    line = (
        "POST /v1/segments/4100000000000001/users 200 12ms "
        "ad_account_id=5c3e1d2a-8b7f-4e6d-a1c9-3b2d4f6e8a01 "
        "GET /v1/adaccounts/5c3e1d2a-8b7f-4e6d-a1c9-3b2d4f6e8a01/segments "
        "maid F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6 phone 07700 900123 run 12"
    )
    cleaned = redact(line)
    assert "/v1/segments/4100000000000001/users" in cleaned
    assert cleaned.count("5c3e1d2a-8b7f-4e6d-a1c9-3b2d4f6e8a01") == 2
    assert "F81D4FAE" not in cleaned
    assert "900123" not in cleaned
    assert "run 12" in cleaned
