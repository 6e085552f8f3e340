"""Find command-line words (flags, ``audiencesync`` commands) in what the web and API say.

The web UI and the REST API speak of fields, pages and buttons; only the CLI names
flags and commands (``audiencesync.wording``). The API and web test fixtures pass every
response they receive through :func:`cli_words_in_response`; a test fails on any hit.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

#: a flag (``--email-field``), a quoted command, or ``audiencesync <command>``.
CLI_WORDS = re.compile(
    r"(?<![\w-])--[a-z][a-z0-9-]*"
    r"|`audiencesync\b"
    r"|\baudiencesync (?:init|serve|worker|try|demo|emulator|audit|bench|identifiers|schedule|"
    r"segments|exports|runs|connections|profiles|sources|users|alerts|privacy)\b"
)
#: JSON keys whose values are sentences for people.
SENTENCE_KEYS = {
    "detail", "error", "errors", "message", "last_error", "reason", "held_unknown", "words",
    "schedule_words", "summary", "note", "notes",
}  # fmt: skip


class _VisibleText(HTMLParser):
    """The text a person sees (and attribute texts they read): not scripts or styles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1
        for name, value in attrs:
            if name in ("data-confirm", "title", "placeholder", "aria-label") and value:
                self.parts.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def _sentences(value: Any, key: str | None = None) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _sentences(v, str(k))]
    if isinstance(value, list):
        return [s for v in value for s in _sentences(v, key)]
    if isinstance(value, str) and key in SENTENCE_KEYS:
        return [value]
    return []


def cli_words_in_response(url: str, content_type: str, text: str) -> list[str]:
    """The command-line words of one response's sentences (empty: none)."""
    if "/api/docs" in url or "/api/openapi.json" in url or "/static/" in url:
        return []  # the API's own reference documentation
    if "json" in content_type:
        try:
            found = _sentences(json.loads(text))
        except ValueError:
            found = [text]
    elif "html" in content_type:
        parser = _VisibleText()
        parser.feed(text)
        found = [" ".join(parser.parts)]
    else:
        return []
    return [match.group(0) for sentence in found for match in CLI_WORDS.finditer(sentence)]
