"""One message vocabulary, two renderings: the CLI's and the web's (API and UI).

A service error (``audiencesync.errors``) says what went wrong in words of no interface,
and carries the input at fault (``field``) and the action that helps (``fix``) as data.
This module words those two per interface: the command line names flags and commands,
the API and the web UI name form fields, pages and buttons. A test checks that every
field and fix has both renderings, and that no web rendering names a flag or a command.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from audiencesync.errors import AudiencesyncError, DatabaseUnavailableError, Fix

#: spec field -> (CLI flag, the UI's label for it).
FIELDS: dict[str, tuple[str, str]] = {
    "name": ("NAME", "Name"),
    "connection": ("--connection NAME", "Connection for export"),
    "segments": ("--segment NAME", "Segments to export"),
    "email_field": ("--email-field COLUMN", "Email field"),
    "phone_field": ("--phone-field COLUMN", "Phone field"),
    "maid_field": ("--maid-field COLUMN", "Mobile ad id field"),
    "default_country": ("--default-country CC", "Default country for phones"),
    "audience_id": ("--audience-id ID", "Snapchat audience"),
    "audience_name": ("--audience-name NAME", "New audience name"),
    "audience_description": ("--audience-description TEXT", "New audience description"),
    "retention_days": ("--retention-days DAYS", "Retention (days)"),
    "ad_account_id": ("--ad-account ID", "Ad account"),
    "mode": ("--mode mirror|add-only", "Mode"),
    "schedule": ("--schedule", "When it runs"),
    "timezone": ("--timezone ZONE", "Time zone"),
    "max_removal_share": ("--max-removal-share", "Hold removals for approval above"),
    "agree": ("--agree", "I agree"),
    "encoding": ("--encoding NAME", "Encoding"),
    "delimiter": ("--delimiter CHAR", "Delimiter"),
    "on_duplicate_key": ("--on-duplicate-key first|last", "When a key repeats"),
    "format": ("--format csv|parquet|json|ndjson", "Format"),
    "limit": ("--limit N", "Rows"),
    "url": ("--url URL", "Database URL"),
    "table": ("--table TABLE", "Table"),
    "source": ("--source NAME", "Source"),
    "dataset": ("--name NAME", "Dataset name"),
    "key": ("", "Key column"),  # the CLI's --key was given: its message names the column
    "rules": ("", "Rules"),  # the CLI's rules are a file it was given: no flag to add
    "confirm": ("--yes", "the confirmation box"),
    "dry_run": ("--dry-run", "Dry run"),
    "consent_field": ("--consent-field COLUMN", "Consent field"),
    "consent_values": ("--consent-values VALUE,...", "Values that mean consent"),
    "column": ("--column NAME", "Column"),
    "list_source": ("--file F or --dataset D --column C", "File or dataset column"),
    "list_exports": ("--all or --exports A,B", "Applies to"),
    "identifier_type": ("--type email|phone|maid", "Identifier type"),
    "person": ("--email, --phone or --maid", "Email, phone or mobile ad id"),
    "sources": ("--from DATASET:KEY", "Sources"),
    "output": ("--output FILE", "Output file"),
}

#: fix kind -> (CLI wording, web wording); ``{t}`` is the target, ``{q}`` it shell-quoted.
FIX_KINDS: dict[str, tuple[str, str]] = {
    "list": ("see `audiencesync {t} list`", "see the {t}"),
    "reauthenticate": (
        "an administrator can run `audiencesync connections reauth {q}`",
        "an administrator can use Re-authenticate with Snapchat on Admin › Connections",
    ),
    "cancel_run": (
        "or cancel it with `audiencesync runs cancel {t}`",
        "or cancel it with Cancel on run {t}'s page",
    ),
    "approve_run": (
        "approve it with `audiencesync runs approve {t}`, or dismiss it",
        "approve or dismiss it on run {t}'s page",
    ),
    "clear_audience": (
        "empty it with `audiencesync exports clear {q}`",
        "empty it with Clear audience on the export's page",
    ),
    "replace_audience": (
        "rebuild it with `audiencesync exports run {q} --replace`",
        "rebuild it with Replace audience on the export's page",
    ),
    "full_run": ("run it with --full if it fails", "use Full run if it fails"),
    "set_connection": (
        "give it one with `audiencesync exports update {q} --connection NAME`",
        "give it one with Edit on the export's page",
    ),
    "create_audience": ("or pass --create-audience", "or choose Create a new audience"),
    "detach": (
        "or pass --detach to keep them, inactive, until they get another connection",
        "or tick 'detach its exports' to keep them, inactive, until they get another connection",
    ),
    "confirm": ("confirm with --yes (or answer yes)", "tick the confirmation box"),
    "init": ("run `audiencesync init` first", "an administrator must set up this home first"),
    "add_users": ("add more with `audiencesync users add`", "add more on Admin › Users"),
    "update_segment": (
        "change it with `audiencesync segments update`",
        "change it with Edit on the segment's page",
    ),
    "drop_dry_run": ("drop --dry-run (or --replace)", "use Replace audience alone"),
    "erase_again": (
        "run `audiencesync privacy erase` again with them",
        "erase them again on Admin › Privacy",
    ),
    "show_erasure": (
        "see `audiencesync privacy erasures show {t}`",
        "see erasure {t} on Admin › Privacy",
    ),
    "schema": ("see `audiencesync profiles schema {q}`", "see the dataset's columns on its page"),
    "list_unifications": (
        "see `audiencesync profiles unifications`",
        "see the Unified profiles page",
    ),
    "remove_unification": (
        "remove them first with `audiencesync profiles remove NAME`",
        "remove them first (DELETE /api/v1/unifications/NAME)",
    ),
    "show_profiles": (
        "see `audiencesync profiles show {q}`",
        "see the dataset's page",
    ),
    "resume_erasure": (
        "or run `audiencesync privacy erasures resume {t}`",
        "or use Resume the erasure on Admin › Privacy",
    ),
}

#: what a ``list`` fix's target is called on the web.
LIST_PAGES = {
    "segments": "Segments page",
    "connections": "Admin › Connections page",
    "exports": "Data › Exports page",
    "runs": "runs on the export's page",
    "profiles": "Profiles page",
    "sources": "Admin › Sources page",
    "users": "Admin › Users page",
    "alerts": "Admin › Alerts page",
    "privacy suppress": "suppression lists on Admin › Privacy",
    "privacy erasures": "erasures on Admin › Privacy",
}


def _fix_words(fix: Fix, cli: bool) -> str:
    cli_words, web_words = FIX_KINDS[fix.kind]
    target = fix.target or ""
    if not cli and fix.kind == "list":
        target = LIST_PAGES.get(target, target)
    quoted = shlex.quote(target) if target else "NAME"
    return (cli_words if cli else web_words).format(t=target, q=quoted)


def _join(message: str, extra: str) -> str:
    if not extra:
        return message
    base = message.rstrip()
    if base.endswith("."):
        base = base[:-1]
    return f"{base}{'; ' if ':' in base else ': '}{extra}."


def for_cli(error: AudiencesyncError) -> str:
    """The error as the command line says it: with the flag of its field, and a command."""
    message = error.message
    if error.field in FIELDS:
        flag = FIELDS[error.field][0]
        if flag and flag.split()[0] not in message and flag != "NAME":
            message = _join(message, f"use {flag}")
    if error.fix is not None and error.fix.kind in FIX_KINDS:
        message = _join(message, _fix_words(error.fix, cli=True))
    return message


def for_web(error: AudiencesyncError) -> str:
    """The error as the API and the UI say it: the action as a page or a button.

    An unreachable control database is told without the driver's reason, which names
    the database's host, port and name to anyone, signed in or not.
    """
    if isinstance(error, DatabaseUnavailableError):
        return error.public_message
    if error.fix is not None and error.fix.kind in FIX_KINDS:
        return _join(error.message, _fix_words(error.fix, cli=False))
    return error.message


def field_label(field: str | None) -> str | None:
    """The UI's label of a spec field (None when the field has none)."""
    if field is None or field not in FIELDS:
        return None
    return FIELDS[field][1]


def fix_data(fix: Fix | None) -> dict[str, str | None] | None:
    """A fix as the API returns it: ``{"kind": ..., "target": ..., "words": ...}``."""
    if fix is None:
        return None
    words = _fix_words(fix, cli=False) if fix.kind in FIX_KINDS else None
    return {"kind": fix.kind, "target": fix.target, "words": words}


def erasure_exports(exports: Mapping[str, Any], *, cli: bool) -> dict[str, Any]:
    """An erasure's per-export results with each note worded for one interface.

    The service stores a note's action as data (``fix``: kind and target); the note
    (``message``) comes back with that action in CLI or web words, and the web's ``fix``
    also carries its ``words`` (like :func:`fix_data`).
    """
    worded: dict[str, Any] = {}
    for name, item in exports.items():
        item = dict(item)
        stored = item.get("fix")
        if isinstance(stored, dict) and stored.get("kind") in FIX_KINDS:
            fix = Fix(str(stored["kind"]), stored.get("target"))
            item["message"] = _join(str(item.get("message") or ""), _fix_words(fix, cli=cli))
            item["fix"] = None if cli else fix_data(fix)
        worded[name] = item
    return worded
