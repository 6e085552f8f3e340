"""Who may call the API: tokens (hashed, revocable, expiring), sessions with CSRF, throttle."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from audiencesync.api import auth
from audiencesync.control.models import Role, utcnow
from audiencesync.control.web_models import ApiToken, LoginThrottle, WebSession
from audiencesync.errors import PermissionDeniedError
from tests.conftest import PASSWORD
from tests.integration.api.conftest import Api


def sign_in(api: Api, name: str, password: str = PASSWORD) -> tuple[httpx.Client, httpx.Response]:
    """A browser-like client signed in through the login page."""
    browser = api.client()
    page = browser.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    answer = browser.post(
        "/login", data={"name": name, "password": password, "csrf_token": token.group(1)}
    )
    return browser, answer


def test_no_credentials_is_401_in_plain_words(api: Api) -> None:
    with api.client() as anonymous:
        answer = anonymous.get("/api/v1/exports")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in answer.json()["detail"]


def test_a_wrong_token_is_401(api: Api) -> None:
    with api.client("as_not-a-token") as stranger:
        answer = stranger.get("/api/v1/me")
    assert answer.status_code == 401
    assert "not valid" in answer.json()["detail"]


def test_me_names_the_user_and_how_they_signed_in(api: Api) -> None:
    answer = api.contributor.get("/api/v1/me")
    assert answer.json() == {
        "name": "carol", "role": "contributor", "authenticated_by": "token", "time_zone": None,
    }  # fmt: skip


def test_tokens_are_shown_once_stored_hashed_and_revoked_by_their_owner(api: Api) -> None:
    created = api.viewer.post("/api/v1/me/tokens", json={"name": "script"})
    assert created.status_code == 201
    token = created.json()["token"]
    api.recorder.created_tokens.add(token)
    assert token.startswith("as_")
    assert created.json()["prefix"] == token[:10]
    with api.ctx.db.session() as session:
        stored = session.scalars(select(ApiToken.token_hash)).all()
    assert token not in stored
    assert auth.digest(token) in stored
    listed = api.viewer.get("/api/v1/me/tokens").json()
    assert {t["name"] for t in listed} == {"tests", "script"}
    assert all("token" not in t for t in listed)
    with api.client(token) as script:
        assert script.get("/api/v1/me").json()["name"] == "victor"
        # Another user cannot revoke it; its owner can, and it stops working at once.
        token_id = created.json()["id"]
        assert api.admin.delete(f"/api/v1/me/tokens/{token_id}").status_code == 404
        assert script.delete(f"/api/v1/me/tokens/{token_id}").status_code == 204
        assert script.get("/api/v1/me").status_code == 401


def test_an_expired_token_stops_working(api: Api) -> None:
    created = auth.create_token(api.ctx, api.actors[Role.VIEWER], "short", expires_in_days=1)
    api.recorder.created_tokens.add(created.token)
    with api.ctx.db.session() as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.id == created.view.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    with api.client(created.token) as script:
        assert script.get("/api/v1/me").status_code == 401


def test_token_names_are_checked(api: Api) -> None:
    answer = api.admin.post("/api/v1/me/tokens", json={"name": "  "})
    assert answer.status_code == 400
    assert "name" in answer.json()["detail"]


def test_a_session_cookie_works_and_changes_need_its_csrf_token(api: Api) -> None:
    browser, answer = sign_in(api, "admin")
    try:
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        assert "Path=/" in cookie
        assert browser.get("/api/v1/me").json()["authenticated_by"] == "session"
        refused = browser.post("/api/v1/me/tokens", json={"name": "x"})
        assert refused.status_code == 403
        assert "CSRF" in refused.json()["detail"]
        page = browser.get("/account")
        csrf = re.search(r'"X-CSRF-Token": "([^"]+)"', page.text)
        assert csrf is not None
        created = browser.post(
            "/api/v1/me/tokens", json={"name": "x"}, headers={"X-CSRF-Token": csrf.group(1)}
        )
        assert created.status_code == 201
        api.recorder.created_tokens.add(created.json()["token"])
        # Signing out ends the session on the server, not only in the browser.
        session_cookie = browser.cookies["audiencesync_session"]
        browser.post("/logout", data={"csrf_token": csrf.group(1)})
    finally:
        browser.close()
    with api.client(cookies={"audiencesync_session": session_cookie}) as replay:
        assert replay.get("/api/v1/me").status_code == 401
    with api.ctx.db.session() as session:
        stored = session.scalars(select(WebSession.id_hash)).all()
    assert session_cookie not in stored


def test_sign_in_is_throttled_after_repeated_failures(api: Api) -> None:
    for _ in range(auth.MAX_FAILURES_PER_USER):
        browser, answer = sign_in(api, "carol", "wrong password!")
        browser.close()
        assert answer.status_code == 403
        assert "wrong user name or password" in answer.text
    browser, answer = sign_in(api, "carol")
    browser.close()
    assert answer.status_code == 429
    assert "too many failed sign-ins" in answer.text
    # Another user from the same address is not blocked by carol's failures.
    browser, answer = sign_in(api, "victor")
    browser.close()
    assert answer.status_code == 303


def _guess(api: Api, name: str, password: str, address: str) -> str:
    try:
        auth.sign_in(api.ctx, name, password, address=address)
    except auth.SignInThrottledError:
        return "throttled"
    except PermissionDeniedError:
        return "checked"
    return "signed in"


def test_parallel_guesses_get_no_more_password_checks_than_the_limit(api: Api) -> None:
    """Each attempt is counted before its password is checked, so a burst cannot race it."""
    with ThreadPoolExecutor(12) as pool:
        outcomes = list(
            pool.map(lambda i: _guess(api, "victor", f"guess {i}", "203.0.113.9"), range(30))
        )
    assert outcomes.count("checked") == auth.MAX_FAILURES_PER_USER
    assert outcomes.count("throttled") == 30 - auth.MAX_FAILURES_PER_USER
    # The right password is refused too until the block ends, from any address.
    assert _guess(api, "victor", PASSWORD, "198.51.100.7") == "throttled"
    with api.ctx.db.session() as session:
        row = session.get(LoginThrottle, "user:victor")
        assert row is not None
        assert row.blocked_until is not None
        # Once the block and the window are over, the name gets a fresh count.
        row.first_failure_at = utcnow() - auth.THROTTLE_WINDOW - timedelta(minutes=1)
        row.blocked_until = utcnow() - timedelta(seconds=1)
    assert _guess(api, "victor", PASSWORD, "198.51.100.7") == "signed in"
    with api.ctx.db.session() as session:
        assert session.get(LoginThrottle, "user:victor") is None


def test_successful_sign_ins_do_not_count_against_their_address(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "MAX_FAILURES_PER_ADDRESS", 3)
    for _ in range(5):
        assert _guess(api, "carol", PASSWORD, "192.0.2.1") == "signed in"
    for _ in range(3):
        assert _guess(api, "nobody", "wrong guess", "192.0.2.1") == "checked"
    assert _guess(api, "carol", PASSWORD, "192.0.2.1") == "throttled"


NEW_PASSWORD = "a brand new password"


def _signed_out(browser: httpx.Client) -> bool:
    return browser.get("/api/v1/me").status_code == 401


def test_an_admin_password_reset_revokes_the_users_tokens_and_sessions(api: Api) -> None:
    browser, _ = sign_in(api, "carol")
    try:
        assert api.contributor.get("/api/v1/me").status_code == 200
        reset = api.admin.patch("/api/v1/users/carol", json={"password": NEW_PASSWORD})
        assert reset.status_code == 200
        assert api.contributor.get("/api/v1/me").status_code == 401
        assert _signed_out(browser)
    finally:
        browser.close()
    with api.ctx.db.session() as session:
        carol = api.actors[Role.CONTRIBUTOR].id
        assert session.scalars(select(ApiToken).where(ApiToken.user_id == carol)).all() == []
    # The administrator's own token is untouched.
    assert api.admin.get("/api/v1/me").status_code == 200
    browser, answer = sign_in(api, "carol", NEW_PASSWORD)
    browser.close()
    assert answer.status_code == 303


def test_your_own_password_needs_the_current_one_and_ends_your_other_access(api: Api) -> None:
    other_token = auth.create_token(api.ctx, api.actors[Role.VIEWER], "laptop").token
    api.recorder.created_tokens.add(other_token)
    browser, _ = sign_in(api, "victor")
    try:
        missing = api.viewer.patch("/api/v1/users/victor", json={"password": NEW_PASSWORD})
        assert missing.status_code == 400
        assert "current_password" in missing.json()["detail"]
        wrong = api.viewer.patch(
            "/api/v1/users/victor",
            json={"password": NEW_PASSWORD, "current_password": "not my password"},
        )
        assert wrong.status_code == 403
        assert "current password" in wrong.json()["detail"]
        assert not _signed_out(browser)  # nothing was changed or revoked
        changed = api.viewer.patch(
            "/api/v1/users/victor", json={"password": NEW_PASSWORD, "current_password": PASSWORD}
        )
        assert changed.status_code == 200
        # The token that made the change keeps working; every other access of victor ends.
        assert api.viewer.get("/api/v1/me").status_code == 200
        with api.client(other_token) as laptop:
            assert laptop.get("/api/v1/me").status_code == 401
        assert _signed_out(browser)
    finally:
        browser.close()
    old, answer = sign_in(api, "victor")
    old.close()
    assert answer.status_code == 403
    # An administrator changing their own password over the API needs it too.
    admin_own = api.admin.patch("/api/v1/users/admin", json={"password": NEW_PASSWORD})
    assert admin_own.status_code == 400


def test_a_session_changing_its_password_over_the_api_stays_signed_in(api: Api) -> None:
    here, _ = sign_in(api, "victor")
    there, _ = sign_in(api, "victor")
    try:
        csrf = re.search(r'"X-CSRF-Token": "([^"]+)"', here.get("/account").text)
        assert csrf is not None
        changed = here.patch(
            "/api/v1/users/victor",
            json={"password": NEW_PASSWORD, "current_password": PASSWORD},
            headers={"X-CSRF-Token": csrf.group(1)},
        )
        assert changed.status_code == 200
        assert not _signed_out(here)
        assert _signed_out(there)
        assert api.viewer.get("/api/v1/me").status_code == 401
    finally:
        here.close()
        there.close()


def test_the_login_form_needs_its_csrf_cookie(api: Api) -> None:
    with api.client() as browser:
        answer = browser.post(
            "/login", data={"name": "admin", "password": PASSWORD, "csrf_token": "forged"}
        )
    assert answer.status_code == 400
    assert "audiencesync_session" not in answer.headers.get("set-cookie", "")


def test_a_non_ascii_csrf_token_is_refused_not_an_error(api: Api) -> None:
    browser, _ = sign_in(api, "victor")
    try:
        api_call = browser.post(
            "/api/v1/me/tokens", json={"name": "x"}, headers={"X-CSRF-Token": "é".encode()}
        )
        assert api_call.status_code == 403
        assert "CSRF" in api_call.json()["detail"]
        form = browser.post("/logout", data={"csrf_token": "é"})
        assert form.status_code == 403
        assert browser.get("/api/v1/me").status_code == 200  # still signed in
    finally:
        browser.close()
    with api.client() as stranger:
        stranger.get("/login")
        login = stranger.post(
            "/login", data={"name": "victor", "password": PASSWORD, "csrf_token": "é"}
        )
    assert login.status_code == 400
    assert "the sign-in form expired" in login.text


def test_validation_errors_are_plain_words(api: Api) -> None:
    answer = api.admin.post("/api/v1/users", json={"name": "dave"})
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert "'role' is required" in detail
    assert "'password' is required" in detail
    answer = api.admin.post("/api/v1/users", json={"name": "dave", "role": "boss", "password": "x"})
    assert answer.status_code == 422
    assert "'role'" in answer.json()["detail"]


def test_openapi_and_docs_are_served(api: Api) -> None:
    with api.client() as anonymous:
        schema = anonymous.get("/api/openapi.json").json()
        docs = anonymous.get("/api/docs")
        bundle = anonymous.get("/static/swagger/swagger-ui-bundle.js")
    assert "/api/v1/exports/{name}/run" in schema["paths"]
    assert "APIToken" in schema["components"]["securitySchemes"]
    assert docs.status_code == 200
    assert "/static/swagger/init.js" in docs.text
    assert bundle.status_code == 200


def test_every_answer_carries_the_security_headers(api: Api) -> None:
    with api.client() as anonymous:
        answer = anonymous.get("/login")
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"


def test_only_a_bearer_header_is_a_token_attempt(api: Api) -> None:
    """A proxy's Basic header does not hide the session cookie; a wrong Bearer token does."""
    basic = {"Authorization": "Basic dXNlcjpwYXNz"}
    browser, _ = sign_in(api, "victor")
    try:
        me = browser.get("/api/v1/me", headers=basic)
        assert me.status_code == 200
        assert me.json()["authenticated_by"] == "session"
        assert browser.get("/exports", headers=basic).status_code == 200
        wrong = browser.get("/api/v1/me", headers={"Authorization": "Bearer as_not-a-token"})
        assert wrong.status_code == 401
        assert "not valid" in wrong.json()["detail"]
    finally:
        browser.close()
    with api.client() as anonymous:
        answer = anonymous.get("/api/v1/me", headers=basic)
    assert answer.status_code == 401
    assert "sign in first" in answer.json()["detail"]
