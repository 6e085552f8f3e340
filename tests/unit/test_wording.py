"""One message vocabulary, two renderings: flags and commands only on the command line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from audiencesync import wording
from audiencesync.errors import ConflictError, Fix, NotFoundError, UserInputError
from tests.cli_words import CLI_WORDS

SOURCE = Path(__file__).resolve().parents[2] / "src" / "audiencesync"


@pytest.mark.parametrize("kind", sorted(wording.FIX_KINDS))
def test_every_fix_has_a_web_wording_without_command_line_words(kind: str) -> None:
    error = ConflictError("something is in the way", fix=Fix(kind, "Snapchat – UK ads"))
    web = wording.for_web(error)
    assert not CLI_WORDS.search(web), web
    assert web.startswith("something is in the way")
    assert wording.for_cli(error) != web


def test_the_cli_names_the_flag_and_quotes_names_for_the_shell() -> None:
    error = UserInputError("an export needs at least one segment to send.", field="segments")
    assert wording.for_cli(error) == (
        "an export needs at least one segment to send: use --segment NAME."
    )
    assert wording.for_web(error) == "an export needs at least one segment to send."
    assert wording.field_label("segments") == "Segments to export"
    reauth = ConflictError(
        "connection needs re-authentication", fix=Fix("reauthenticate", "UK ads")
    )
    assert "`audiencesync connections reauth 'UK ads'`" in wording.for_cli(reauth)
    assert "Re-authenticate with Snapchat" in wording.for_web(reauth)
    listed = NotFoundError("there is no segment named 'x'.", fix=Fix("list", "segments"))
    assert wording.for_cli(listed) == (
        "there is no segment named 'x': see `audiencesync segments list`."
    )
    assert wording.for_web(listed) == "there is no segment named 'x': see the Segments page."


def _literal_text(node: ast.expr) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_literal_text(v) for v in node.values if isinstance(v, ast.Constant))
    if isinstance(node, ast.BinOp):
        return _literal_text(node.left) + _literal_text(node.right)
    return ""


def test_no_service_error_message_names_a_flag_or_a_command() -> None:
    """Every error raised outside the CLI and the emulator: its sentence is the web's too."""
    offenders = []
    for path in sorted(SOURCE.rglob("*.py")):
        relative = path.relative_to(SOURCE)
        if relative.parts[0] in ("cli", "emulator") or relative.name == "wording.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if not name.endswith(("Error", "Exception")):
                continue
            text = _literal_text(node.args[0])
            if CLI_WORDS.search(text):
                offenders.append(f"{relative}:{node.lineno}: {text[:90]}")
    assert not offenders, "\n".join(offenders)


def _docstrings(tree: ast.Module) -> set[int]:
    kinds = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, kinds)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }


def test_no_sentence_a_service_stores_or_returns_names_a_flag_or_a_command() -> None:
    """Not only raised errors: notes a service keeps (an erasure's per-export message,
    a run's errors) reach the API and the web as they are, so no string literal outside
    the CLI, the emulator and the wording itself names a flag or a command (docstrings
    aside; apprise's app description is a name, not a command)."""
    offenders = []
    for path in sorted(SOURCE.rglob("*.py")):
        relative = path.relative_to(SOURCE)
        if relative.parts[0] in ("cli", "emulator") or relative.name == "wording.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = _docstrings(tree) | {
            id(keyword.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            for keyword in node.keywords
            if keyword.arg == "app_desc"
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in skipped
                and CLI_WORDS.search(node.value)
            ):
                offenders.append(f"{relative}:{node.lineno}: {node.value[:90]}")
    assert not offenders, "\n".join(offenders)


def test_an_erasure_note_names_the_button_on_the_web_and_the_command_on_the_cli() -> None:
    stored = {
        "m": {"status": "pending", "message": "run 7 of the export was under way: the "
              "erasure is resumed once it ends.", "fix": {"kind": "resume_erasure",
                                                         "target": "3"}},
        "n": {"status": "done", "message": None},
    }  # fmt: skip
    web = wording.erasure_exports(stored, cli=False)
    cli = wording.erasure_exports(stored, cli=True)
    assert web["m"]["message"] == (
        "run 7 of the export was under way: the erasure is resumed once it ends; "
        "or use Resume the erasure on Admin › Privacy."
    )
    assert web["m"]["fix"]["words"] == "or use Resume the erasure on Admin › Privacy"
    assert not CLI_WORDS.search(web["m"]["message"])
    assert "`audiencesync privacy erasures resume 3`" in cli["m"]["message"]
    assert web["n"] == cli["n"] == stored["n"]
    assert stored["m"]["message"].endswith("once it ends.")  # the stored note is untouched
