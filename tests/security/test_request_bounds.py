"""Second review of issue 13, request side: a duplicate Content-Type cannot slip past the
body cap; anonymous uploads are refused before a byte is read; huge integers in rules
and hostile first lines of imports are one sentence; X-Forwarded-For lines are one list."""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from audiencesync.errors import UserInputError
from audiencesync.segments.rules import load_rules_file
from audiencesync.settings import Settings
from tests.integration.api.conftest import Api

VALIDATE = "/api/v1/segments/validate"
UPLOAD = "/api/v1/datasets/upload"


def test_several_content_type_headers_are_refused_before_the_body_is_read(api: Api) -> None:
    big = b'{"rules": [' + b",".join([b"1"] * 1_000_000) + b"]}"  # 2 MB, the cap is 1 MiB
    deep = b'{"rules": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    for body in (big, deep):
        answer = api.viewer.post(
            VALIDATE,
            content=body,
            headers=[
                ("Content-Type", "application/json"),
                ("Content-Type", "multipart/form-data; boundary=x"),
            ],
        )
        assert answer.status_code == 400, answer.text
        assert "several content-type headers" in answer.json()["detail"]
    # One header: the cap and the depth check answer as before.
    single = api.viewer.post(VALIDATE, content=big, headers={"Content-Type": "application/json"})
    assert single.status_code == 413


def _raw_post(api: Api, path: str, headers: dict[str, str], first_bytes: bytes) -> str:
    """Send the headers and only the start of the body; the answer's status line."""
    parts = urlsplit(api.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as conn:
        lines = [f"POST {path} HTTP/1.1", f"Host: {parts.hostname}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + first_bytes)
        # The rest of the declared body is never sent: an answer proves it was not awaited.
        answer = conn.recv(65536).decode("latin-1")
    return answer.split("\r\n", 1)[0]


def test_an_anonymous_upload_is_refused_before_its_body_is_read(api: Api) -> None:
    boundary = "xyz"
    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(100 << 20),  # 100 MiB declared, under the 512 MiB cap
    }
    status = _raw_post(api, UPLOAD, headers, f"--{boundary}\r\n".encode())
    assert " 401 " in status, status
    assert not list((api.ctx.home / "uploads").glob("*/*"))
    # Signed in, a body over the cap is refused from its declared length alone.
    token = str(api.viewer.headers["Authorization"])
    over = {**headers, "Authorization": token, "Content-Length": str(600 << 20)}
    status = _raw_post(api, UPLOAD, over, b"--xyz\r\n")
    assert " 413 " in status, status


def test_the_upload_cap_is_512_mib_unless_set(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url=None, secret_key=None, user=None)
    assert settings.max_upload_bytes == 512 * 1024 * 1024


def test_an_anonymous_upload_with_a_session_cookie_reaches_the_route(api: Api) -> None:
    # A cookie that is not a live session is refused by the route itself, not read first.
    with api.client(cookies={"audiencesync_session": "not-a-session"}) as anonymous:
        answer = anonymous.post(UPLOAD, files={"file": ("p.csv", b"id\n1\n")}, data={"key": "id"})
    assert answer.status_code == 401, answer.text
    assert "sign in" in answer.json()["detail"]
    assert "uploads need" not in answer.json()["detail"]  # the route's answer, not the cap's


HUGE = "1" + "0" * 5000


@pytest.mark.parametrize(
    "text",
    [f"field: age\nop: '>'\nvalue: {HUGE}", '{"field": "age", "op": ">", "value": ' + HUGE + "}"],
)
def test_an_integer_of_thousands_of_digits_in_a_rule_is_one_sentence(
    profiles: Api, text: str
) -> None:
    answer = profiles.viewer.post(VALIDATE, json={"dataset": "customers", "rules_text": text})
    assert answer.status_code == 400, answer.text
    assert "digits" in answer.json()["detail"]


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_rules_file_with_a_huge_integer_is_one_sentence(tmp_path: Path, suffix: str) -> None:
    # The CLI's --rules FILE reads through load_rules_file.
    path = tmp_path / f"rule{suffix}"
    path.write_text('{"field": "age", "op": ">", "value": ' + HUGE + "}")
    with pytest.raises(UserInputError, match="more than 4,300 digits"):
        load_rules_file(path)


FIRST_LINES = {
    # No header: the first line is a customer.
    "headerless.csv": b"1001,Ann Smith,555 0100\n1002,Bob Jones,555 0101\n",
    # Not a CSV of profiles at all: an environment file.
    "env.csv": b"SNAPCHAT_CLIENT_SECRET=s3cr3tValue123\nOTHER=x\n",
}


@pytest.mark.parametrize("name", sorted(FIRST_LINES))
def test_a_first_line_that_is_data_is_never_quoted(api: Api, name: str) -> None:
    answer = api.contributor.post(
        UPLOAD, files={"file": (name, FIRST_LINES[name])}, data={"key": "id", "name": "people"}
    )
    assert answer.status_code == 400, answer.text
    detail = answer.json()["detail"]
    for value in ("1001", "Ann", "555", "SNAPCHAT", "s3cr3t"):
        assert value not in detail, detail
    assert "does not look like column names" in detail


def test_a_ragged_csv_names_the_ragged_line(api: Api) -> None:
    body = b"id,email,age\n1,ann@example.com,30\n2,bob@example.com,31\n3,c@example.com,3,extra\n"
    answer = api.contributor.post(
        UPLOAD, files={"file": ("ragged.csv", body)}, data={"key": "id", "name": "people"}
    )
    assert answer.status_code == 400, answer.text
    detail = answer.json()["detail"]
    assert "line 4 has 4 field(s) where the first line has 3" in detail, detail
    assert "@example.com" not in detail


def _counted(headers: list[tuple[bytes, bytes]], trusted: str) -> str:
    from starlette.requests import Request

    from audiencesync.api.deps import client_address

    ctx = SimpleNamespace(settings=SimpleNamespace(trusted_proxies=trusted))
    app = SimpleNamespace(state=SimpleNamespace(ctx=ctx))
    scope = {
        "type": "http", "method": "POST", "path": "/login", "app": app,
        "headers": headers, "client": ("10.0.0.2", 5000),
    }  # fmt: skip
    return client_address(Request(scope))


def test_several_forwarded_for_lines_are_one_list() -> None:
    # The client sends its own X-Forwarded-For line; the proxy appends the real address
    # on a line of its own. Only the right-most untrusted address counts.
    headers = [(b"x-forwarded-for", b"198.51.100.77"), (b"x-forwarded-for", b"203.0.113.9")]
    assert _counted(headers, "10.0.0.0/8") == "203.0.113.9"
    assert _counted(headers, "") == "10.0.0.2"
    one_line = [(b"x-forwarded-for", b"198.51.100.77, 203.0.113.9")]
    assert _counted(one_line, "10.0.0.0/8") == "203.0.113.9"


def test_a_signed_in_upload_still_goes_through(api: Api) -> None:
    # An ordinary signed-in upload still works through the middleware.
    answer = api.contributor.post(
        UPLOAD, files={"file": ("p.csv", b"id,email\n1,a@example.com\n")}, data={"key": "id"}
    )
    assert answer.status_code == 201, answer.text
