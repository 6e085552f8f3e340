"""What a hostile review of forms and settings found (issue 13: bad input gets one clear
sentence, never a 500), each as its own regression test: every one of these answered 500
(or, for the settings, started a server that refused every sign-in) before its fix."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from audiencesync.api import auth
from audiencesync.control.context import Context
from audiencesync.control.db import Database
from audiencesync.control.models import Role
from audiencesync.web import builder
from tests.cli_runner import run_cli
from tests.conftest import make_actors
from tests.integration.api.conftest import Api, AppServer
from tests.integration.api.test_auth import sign_in
from tests.integration.api.test_web_pages import csrf_of

GONE = "that row of the rule builder is gone: reload the page."


@contextmanager
def _signed_in(api: Api, name: str) -> Iterator[httpx.Client]:
    browser, answer = sign_in(api, name)
    assert answer.status_code == 303, answer.text
    try:
        yield browser
    finally:
        browser.close()


def _said(page: str) -> str:
    """The page's text without its markup, as a person reads it."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


# 1. The rule builder's field names --------------------------------------------------


def _deep(levels: int) -> dict[str, str]:
    """Builder fields of groups nested ``levels`` deep (``r.0.kind``, ``r.0.0.kind``...)."""
    return {"r" + ".0" * level + ".kind": "group" for level in range(1, levels + 1)}


@pytest.mark.parametrize(
    ("fields", "sentence"),
    [
        # str.isdigit takes "²", which int() refuses.
        ({"r.\u00b2.kind": "condition"}, GONE),
        ({"r.0.kind": "condition", "action": "remove:r.\u00b2"}, GONE),
        # int() refuses a number of thousands of digits.
        ({"r." + "9" * 5000 + ".kind": "condition"}, GONE),
        ({"r.0.kind": "condition", "action": "remove:r." + "9" * 5000}, GONE),
        # from_form recursed once per level (RecursionError).
        (_deep(600), "the rule builder nests deeper than"),
    ],
    ids=["superscript-row", "superscript-action", "long-row", "long-action", "deep"],
)
def test_tampered_rule_builder_fields_are_one_sentence(
    profiles: Api, fields: dict[str, str], sentence: str
) -> None:
    with _signed_in(profiles, "carol") as browser:
        data = {
            "csrf_token": csrf_of(browser, "/segments/new"), "name": "Older",
            "dataset": "customers", "description": "kept", "rules_yaml": "{field: age}",
            "r.kind": "group", "action": "add-condition:r", **fields,
        }  # fmt: skip
        answer = browser.post("/segments/new", data=data)
        assert answer.status_code == 400, answer.text[:300]
        assert sentence in _said(answer.text)
        # The form comes back with what was typed outside the builder.
        assert 'value="Older"' in answer.text
        assert "{field: age}" in answer.text
        assert "kept" in answer.text
        # ... and the builder works again from there.
        data = {"csrf_token": data["csrf_token"], "name": "Older", "dataset": "customers",
                "r.kind": "group", "r.0.kind": "condition", "r.0.field": "age",
                "r.0.op": ">", "r.0.value": "40", "action": "save"}  # fmt: skip
        assert browser.post("/segments/new", data=data).status_code == 303


def test_the_builder_nests_as_deep_as_a_rule_may_and_no_deeper(profiles: Api) -> None:
    deepest = builder.MAX_BUILDER_DEPTH
    group = "r" + ".0" * (deepest - 1)  # the deepest group: its rows are at ``deepest``
    fields = {
        "name": "Deep", "dataset": "customers", "r.kind": "group", **_deep(deepest - 1),
        f"{group}.0.kind": "condition", f"{group}.0.field": "age", f"{group}.0.op": "in",
        f"{group}.0.value": "30, 40",
        # A second row at the top, so the rule is not shortened to its one group.
        "r.1.kind": "condition", "r.1.field": "age", "r.1.op": ">", "r.1.value": "1",
    }  # fmt: skip
    with _signed_in(profiles, "carol") as browser:
        fields["csrf_token"] = csrf_of(browser, "/segments/new")
        grown = browser.post("/segments/new", data={**fields, "action": f"add-condition:{group}"})
        assert grown.status_code == 200, grown.text[:300]
        assert f'name="{group}.1.field"' in grown.text
        deeper = browser.post("/segments/new", data={**fields, "action": f"add-group:{group}"})
        assert deeper.status_code == 400
        assert "the rule builder nests deeper than" in _said(deeper.text)
        # The deepest rule the builder makes is one the rules take.
        saved = browser.post("/segments/new", data={**fields, "action": "save"})
        assert saved.status_code == 303, _said(saved.text)[:600]


# 2. Numbers in the audit page's address and the token form --------------------------


def test_an_audit_limit_in_other_digits_or_too_long_is_not_a_500(api: Api) -> None:
    with _signed_in(api, "admin") as browser:
        for limit, shown in (("\u00b2", 100), ("9" * 5000, 1000), ("0" * 5000 + "7", 7)):
            page = browser.get("/audit", params={"limit": limit})
            assert page.status_code == 200, (limit[:8], page.text[:300])
            assert f'value="{shown}"' in page.text, limit[:8]


def test_a_token_life_of_thousands_of_digits_is_one_sentence_next_to_it(api: Api) -> None:
    with _signed_in(api, "victor") as browser:
        for days in ("9" * 5000, "2147483648"):
            answer = browser.post(
                "/account/tokens",
                data={"csrf_token": csrf_of(browser, "/account"), "name": "n",
                      "expires_in_days": days},
            )  # fmt: skip
            assert answer.status_code == 400, answer.text[:300]
            error = re.search(
                r'<p class="error field-error"[^>]*data-field="expires_in_days">([^<]*)</p>',
                answer.text,
            )
            assert error is not None, answer.text[:300]
            assert html.unescape(error.group(1)) == auth.TOKEN_DAYS_RANGE
    assert "n" not in [t["name"] for t in api.viewer.get("/api/v1/me/tokens").json()]


# 3. CSV delimiters ------------------------------------------------------------------


def _upload(api: Api, text: str, delimiter: str, name: str) -> httpx.Response:
    return api.contributor.post(
        "/api/v1/datasets/upload",
        files={"file": ("people.csv", text.encode())},
        data={"key": "id", "name": name, "delimiter": delimiter},
    )


def test_a_delimiter_of_several_characters_is_read_or_refused_in_words(api: Api) -> None:
    secret = "ann.secret@example.com"
    # DuckDB splits on up to four bytes: "ab" and "éé" are delimiters it reads.
    for number, delimiter in enumerate(("ab", "\u00e9\u00e9")):
        text = f"id{delimiter}email\n1{delimiter}{secret}\n2{delimiter}b@example.com\n"
        answer = _upload(api, text, delimiter, f"multi{number}")
        assert answer.status_code == 201, answer.text
        assert answer.json()["row_count"] == 2
    # A file that is not split by it: the columns cannot be read (main: a TypeError).
    for delimiter in ("ab", "\u00e9\u00e9"):
        answer = _upload(api, f"id;email\n1;{secret}\n", delimiter, "wrong")
        assert answer.status_code == 400, answer.text
        assert answer.json()["field"] == "delimiter"
        assert secret not in answer.text
    # More than DuckDB takes, or what cannot split a CSV file: refused before reading.
    for delimiter in ("abcde", "\u00e9\u00e9\u00e9", '"', "a\nb"):
        answer = _upload(api, f"id,email\n1,{secret}\n", delimiter, "refused")
        assert answer.status_code == 400, (delimiter, answer.text)
        assert answer.json()["field"] == "delimiter"
        assert answer.json()["detail"].startswith("a CSV delimiter is 1 to 4 bytes")
    names = [d["name"] for d in api.viewer.get("/api/v1/datasets").json()]
    assert sorted(names) == ["multi0", "multi1"]


# 4. The 503 of an unreachable control database --------------------------------------


def test_an_unreachable_database_is_not_described_to_the_web(
    sqlite_ctx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    """The driver's reason names the database's host, port and name: it goes to the
    server's log (and the command line), the web and the API get the sentence alone."""
    admin = make_actors(sqlite_ctx)[Role.ADMIN]
    token = auth.create_token(sqlite_ctx, admin, "outage").token
    server = AppServer(sqlite_ctx)
    kept = sqlite_ctx.db
    sqlite_ctx.db = Database("postgresql://postgres:pw-9s3cret@127.0.0.1:9/customer_ctl_db")
    try:
        caplog.set_level(logging.WARNING, logger="audiencesync")
        with httpx.Client(base_url=server.url, timeout=60) as client:
            answers = [
                client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}),
                client.get("/exports", headers={"Authorization": f"Bearer {token}"}),
            ]
            page = client.get("/login")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            if page.status_code == 200 and csrf is not None:
                answers.append(
                    client.post("/login", data={"name": "admin", "password": "x",
                                                "csrf_token": csrf.group(1)})
                )  # fmt: skip
            else:
                answers.append(page)
    finally:
        sqlite_ctx.db.dispose()
        sqlite_ctx.db = kept
        server.stop()
    sentence = (
        "the control database is unreachable: check AUDIENCESYNC_DATABASE_URL and that the "
        "database server is running and its disk has space."
    )
    for answer in answers:
        assert answer.status_code == 503, answer.text[:300]
        for detail in ("127.0.0.1", "port 9", "customer_ctl_db", "9s3cret", "refused"):
            assert detail not in answer.text, (detail, answer.text[:300])
    assert answers[0].json()["detail"] == sentence
    assert sentence in _said(answers[1].text)
    # The operator finds the reason in the log, without the password.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "refused" in logged
    assert "9s3cret" not in logged


# 5. AUDIENCESYNC_TRUSTED_PROXIES ----------------------------------------------------


@pytest.mark.parametrize("setting", ["10.0.0.0/33", "127.0.0.1, proxy"])
def test_serve_refuses_to_start_with_bad_trusted_proxies(
    sqlite_ctx: Context, tmp_path: Path, setting: str
) -> None:
    """main started, and every sign-in then answered 400."""
    result = run_cli(
        "serve", "--port", "0", "--workers", "0", home=sqlite_ctx.home,
        env={"AUDIENCESYNC_TRUSTED_PROXIES": setting}, timeout=60,
    )  # fmt: skip
    assert result.code == 2, result.output
    assert "AUDIENCESYNC_TRUSTED_PROXIES holds" in result.stderr
    assert "fix the setting" in result.stderr
    assert "Traceback" not in result.output
    assert "audiencesync on http" not in result.stdout
