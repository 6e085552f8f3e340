"""Logging set-up with a redaction filter.

Emails, phone numbers, 64-hex hashes, bearer tokens and ``token=``/``secret=`` pairs are
personal data or keys: whatever a log call receives, they never reach a handler.
"""

from __future__ import annotations

import logging
import re
import sys

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer [redacted]"),
    (
        re.compile(
            r"(?i)\b((?:access|refresh|id)_?token|client_secret|secret|password|code)"
            r"([\"']?\s*[:=]\s*[\"']?)[^\s\"'&,}]+"
        ),
        r"\1\2[redacted]",
    ),
    (re.compile(r"\b[0-9a-fA-F]{64}\b"), "[hash]"),
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "[email]"),
    # A phone is written with a '+' or with separators; bare digit runs are ids (segment
    # ids are 16 digits) and stay readable.
    (
        re.compile(
            r"(?<![\w/-])(?:\+\d[\d\s().-]{6,}\d|\d{1,5}[\s().-]+\d[\d\s().-]{4,}\d)(?![\w-])"
        ),
        "[phone]",
    ),
)
_UUID = re.compile(
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
)
# Organization and ad account ids are UUIDs too; they are not personal data and make log
# lines useful. A UUID anywhere else may be a mobile ad id and is redacted.
_ACCOUNT_CONTEXT = re.compile(
    r"(?i)(organizations?|adaccounts?|ad_account(_id)?|organization_id)[/=:\s\"']*$"
)


def _uuid(match: re.Match[str]) -> str:
    before = match.string[max(0, match.start() - 24) : match.start()]
    return match.group(0) if _ACCOUNT_CONTEXT.search(before) else "[uuid]"


def redact(text: str) -> str:
    """Return ``text`` with personal data and secrets replaced by placeholders."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return _UUID.sub(_uuid, text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message so no secret or personal value is emitted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def configure_logging(level: str = "WARNING") -> None:
    """Send audiencesync's logs to stderr through the redaction filter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger("audiencesync")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
