"""The web UI over HTTP without a browser: sign-in redirects, CSRF, refusals, the builder."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from audiencesync.api import auth
from audiencesync.control.models import Role
from audiencesync.control.web_models import PendingAuthorization
from audiencesync.errors import UserInputError
from audiencesync.segments.rules import parse_rules
from audiencesync.sync.audience import ReadingView
from audiencesync.sync.runs import RunView
from audiencesync.web import builder
from audiencesync.web.charts import export_chart, run_readings, sparkline
from tests.integration.api.conftest import Api, add_export_via_api, connect_via_api
from tests.integration.api.test_auth import sign_in

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(browser: httpx.Client, path: str) -> str:
    found = CSRF.search(browser.get(path).text)
    assert found is not None
    return found.group(1)


def test_pages_send_strangers_to_sign_in_and_back(api: Api) -> None:
    with api.client() as anonymous:
        answer = anonymous.get("/exports/weekly?tab=runs")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/login?next=/exports/weekly%3Ftab%3Druns"
        fragment = anonymous.get("/exports/weekly/runs-panel", headers={"HX-Request": "true"})
        assert fragment.status_code == 204
        assert fragment.headers["hx-redirect"].startswith("/login?next=")
    browser, answer = sign_in(api, "victor")
    browser.close()
    assert answer.headers["location"] == "/"


def test_sign_in_never_sends_you_to_another_site(api: Api) -> None:
    with api.client() as browser:
        page = browser.get("/login", params={"next": "//evil.example/x"})
        token = CSRF.search(page.text)
        assert token is not None
        answer = browser.post(
            "/login",
            data={"name": "admin", "password": "correct horse battery",
                  "csrf_token": token.group(1), "next": "https://evil.example/"},
        )  # fmt: skip
    assert answer.headers["location"] == "/"


def test_a_form_without_its_csrf_token_changes_nothing(api: Api) -> None:
    browser, _ = sign_in(api, "admin")
    try:
        forged = browser.post(
            "/users",
            data={"name": "mallory", "role": "admin", "password": "long enough pw"},
            headers={"Referer": f"{api.url}/users"},
        )
        assert forged.status_code == 303
        shown = browser.get(forged.headers["location"]).text
        assert "this form is out of date or came from another site" in shown
        cross_site = browser.post(
            "/users",
            data={"name": "mallory", "role": "admin", "password": "long enough pw",
                  "csrf_token": csrf_of(browser, "/users")},
            headers={"Origin": "https://evil.example"},
        )  # fmt: skip
        assert cross_site.status_code == 403
        names = [u["name"] for u in api.admin.get("/api/v1/users").json()]
        assert "mallory" not in names
    finally:
        browser.close()


def test_a_refused_button_says_why_on_the_same_page(profiles: Api) -> None:
    connect_via_api(profiles, "Snap", share=True)
    assert add_export_via_api(profiles, profiles.admin).status_code == 201
    browser, _ = sign_in(profiles, "victor")
    try:
        page = browser.get("/exports/weekly")
        assert "Run now" not in page.text
        answer = browser.post(
            "/exports/weekly/run",
            data={"csrf_token": csrf_of(browser, "/exports/weekly")},
            headers={"Referer": f"{profiles.url}/exports/weekly"},
        )
        assert answer.headers["location"] == "/exports/weekly"
        shown = browser.get("/exports/weekly").text
        assert "victor is a viewer and cannot create, change, remove or run exports" in shown
        assert profiles.viewer.get("/api/v1/runs").json() == []
    finally:
        browser.close()


def test_the_connection_callback_checks_the_state_of_this_session(api: Api) -> None:
    browser, _ = sign_in(api, "admin")
    try:
        token = csrf_of(browser, "/connections/new")
        no_consent = browser.post("/connections/new", data={"csrf_token": token, "name": "S"})
        assert no_consent.status_code == 400
        assert "agreement" in no_consent.text
        started = browser.post(
            "/connections/new", data={"csrf_token": token, "name": "S", "agree": "on"}
        )
        authorize = started.headers["location"]
        assert authorize.startswith(api.emulator.auth_url)
        with httpx.Client() as snapchat:
            back = snapchat.get(authorize).headers["location"]
        query = parse_qs(urlsplit(back).query)
        forged = browser.get(
            "/connections/callback", params={"code": query["code"][0], "state": "forged"}
        )
        assert forged.status_code == 403
        assert "different state" in forged.text
        # Another signed-in admin cannot finish this session's sign-in either.
        other, _ = sign_in(api, "admin")
        try:
            stolen = other.get("/connections/callback", params={"code": "x", "state": "y"})
        finally:
            other.close()
        assert stolen.status_code == 403
        assert "did not start a Snapchat sign-in" in stolen.text
        assert api.admin.get("/api/v1/connections").json() == []
    finally:
        browser.close()


def _kept_tokens(api: Api, state: str) -> str | None:
    with api.ctx.db.session() as session:
        row = session.get(PendingAuthorization, auth.digest(state))
        return None if row is None else row.tokens_encrypted


def test_a_browser_sign_in_comes_back_once_and_only_to_its_browser(api: Api) -> None:
    browser, _ = sign_in(api, "admin")
    try:
        token = csrf_of(browser, "/connections/new")
        started = browser.post(
            "/connections/new", data={"csrf_token": token, "name": "S", "agree": "on"}
        )
        with httpx.Client() as snapchat:  # approved twice: two codes for the same state
            back = [snapchat.get(started.headers["location"]).headers["location"] for _ in "12"]
        query = [parse_qs(urlsplit(b).query) for b in back]
        state = query[0]["state"][0]
        # The API's callback does not take a state this browser session started...
        with api.client() as stranger:
            taken = stranger.get(
                "/api/v1/connections/callback", params={"code": query[0]["code"][0], "state": state}
            )
            assert taken.status_code == 403
            assert "started on the web page" in taken.json()["detail"]
            cancelled = stranger.get(
                "/api/v1/connections/callback", params={"error": "x", "state": state}
            )
            assert cancelled.status_code == 403
        scripted = api.admin.post(
            "/api/v1/connections",
            json={"name": "S", "agree": True, "state": state, "code": query[0]["code"][0]},
        )
        assert scripted.status_code == 403
        # ...nor does an ?error= link with another state (or none) cancel it.
        for params in ({"error": "x", "error_description": "call +1 555 0100"},
                       {"error": "x", "state": "forged"}):  # fmt: skip
            forged = browser.get("/connections/callback", params=params)
            assert forged.status_code == 403
            assert "not for the sign-in this browser started" in forged.text
            assert "555 0100" not in browser.get("/connections").text
        assert _kept_tokens(api, state) is None  # still pending, nothing stored yet
        assert browser.get(back[0]).headers["location"] == "/connections/new/save"
        kept = _kept_tokens(api, state)
        assert kept is not None
        # A second answer for the same state (a replay) cannot overwrite the tokens.
        replayed = browser.get(back[1])
        assert replayed.status_code == 403
        assert "already came back once" in replayed.text
        assert _kept_tokens(api, state) == kept
        saved = browser.post(
            "/connections/new/save", data={"csrf_token": token, "export_user": "on"}
        )
        assert saved.headers["location"] == "/connections"
        assert [c["name"] for c in api.admin.get("/api/v1/connections").json()] == ["S"]
    finally:
        browser.close()


def test_snapchats_refusal_with_this_browsers_state_cancels_the_sign_in(api: Api) -> None:
    browser, _ = sign_in(api, "admin")
    try:
        token = csrf_of(browser, "/connections/new")
        started = browser.post(
            "/connections/new", data={"csrf_token": token, "name": "S", "agree": "on"}
        )
        state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
        refused = browser.get(
            "/connections/callback",
            params={"error": "access_denied", "error_description": "the user said no",
                    "state": state},
        )  # fmt: skip
        assert refused.headers["location"] == "/connections"
        assert (
            "Snapchat did not grant access (the user said no)" in browser.get("/connections").text
        )
        with api.ctx.db.session() as session:
            assert session.get(PendingAuthorization, auth.digest(state)) is None
    finally:
        browser.close()


def test_a_contributor_cannot_open_the_connection_steps(api: Api) -> None:
    browser, _ = sign_in(api, "carol")
    try:
        page = browser.get("/connections/new")
        assert page.status_code == 403
        assert "cannot create, change or remove connections" in page.text
    finally:
        browser.close()


def test_an_unknown_format_or_duplicate_policy_is_said_on_the_profiles_page(api: Api) -> None:
    source = api.tmp_path / "people.csv"
    source.write_text("id,email\n1,a@b.c\n")
    browser, _ = sign_in(api, "carol")
    try:
        token = csrf_of(browser, "/profiles")
        for field, value, expected in (
            ("format", "xml", "unknown format &#39;xml&#39;: use one of csv"),
            ("on_duplicate_key", "zz", "unknown on_duplicate_key &#39;zz&#39;: use one of error"),
            ("encoding", "klingon", "unknown encoding &#39;klingon&#39;"),
        ):
            base = {"csrf_token": token, "key": "id", field: value}
            # (A server path outside the import folders is refused before its options:
            # tests/security/test_sources.py. An upload is always read.)
            uploaded = browser.post(
                "/profiles/import", data=base, files={"file": ("people.csv", source.read_bytes())}
            )
            assert uploaded.status_code == 400
            assert expected in uploaded.text
            assert f'data-field="{field}"' in uploaded.text  # next to its field
    finally:
        browser.close()
    assert api.contributor.get("/api/v1/datasets").json() == []


def test_a_token_expiry_that_is_not_a_whole_number_of_days_is_refused(api: Api) -> None:
    browser, _ = sign_in(api, "victor")
    try:
        token = csrf_of(browser, "/account")
        for typed in ("30 days", "1.5", "-1", "\u00b2"):
            answer = browser.post(
                "/account/tokens", data={"csrf_token": token, "name": "n", "expires_in_days": typed}
            )
            assert answer.status_code == 400
            assert "is not a number of days: give a whole number such as 30" in answer.text
        assert [t["name"] for t in api.viewer.get("/api/v1/me/tokens").json()] == ["tests"]
        made = browser.post(
            "/account/tokens", data={"csrf_token": token, "name": "n", "expires_in_days": "30"}
        )
        assert made.status_code == 200
        assert '<code id="new-token">as_' in made.text
    finally:
        browser.close()
    listed = {t["name"]: t for t in api.viewer.get("/api/v1/me/tokens").json()}
    assert listed["n"]["expires_at"] is not None


def test_the_account_page_asks_for_the_current_password_and_ends_other_access(
    api: Api,
) -> None:
    here, _ = sign_in(api, "carol")
    there, _ = sign_in(api, "carol")
    try:
        token = csrf_of(here, "/account")
        form = {"csrf_token": token, "password": "a brand new password",
                "confirm": "a brand new password"}  # fmt: skip
        missing = here.post("/account/password", data=form)
        assert missing.status_code == 400
        assert "give your current password too" in missing.text
        wrong = here.post("/account/password", data={**form, "current_password": "nope nope"})
        assert wrong.status_code == 403
        assert "your current password is not that" in wrong.text
        assert there.get("/account").status_code == 200
        assert api.contributor.get("/api/v1/me").status_code == 200
        changed = here.post(
            "/account/password", data={**form, "current_password": "correct horse battery"}
        )
        assert changed.headers["location"] == "/account"
        assert "your other sessions were signed out" in here.get("/account").text
        assert there.get("/account").headers["location"].startswith("/login")
        assert api.contributor.get("/api/v1/me").status_code == 401
    finally:
        here.close()
        there.close()
    browser, answer = sign_in(api, "carol", "a brand new password")
    browser.close()
    assert answer.status_code == 303


def test_an_admin_reset_on_the_users_page_ends_the_users_access(api: Api) -> None:
    admin, _ = sign_in(api, "admin")
    victim, _ = sign_in(api, "victor")
    try:
        token = csrf_of(admin, "/users")
        page = admin.get("/users").text
        assert 'action="/users/victor/password"' in page
        assert 'action="/users/admin/password"' not in page
        own = admin.post("/users/admin/password", data={"csrf_token": token, "password": "x" * 12})
        assert own.status_code == 400
        assert "change your own password on your account page" in own.text
        reset = admin.post(
            "/users/victor/password", data={"csrf_token": token, "password": "reset by admin"}
        )
        assert reset.headers["location"] == "/users"
        assert victim.get("/exports").headers["location"].startswith("/login")
        assert api.viewer.get("/api/v1/me").status_code == 401
        assert admin.get("/exports").status_code == 200
    finally:
        admin.close()
        victim.close()


# --- the rule builder ----------------------------------------------------------------

COLUMNS = {"country": "VARCHAR", "age": "BIGINT", "vip": "BOOLEAN", "email": "VARCHAR"}


def test_builder_rows_become_the_rule_a_yaml_file_would_hold() -> None:
    form = {
        "r.kind": "group", "r.join": "any",
        "r.0.kind": "condition", "r.0.field": "age", "r.0.op": "between", "r.0.value": "18, 30",
        "r.1.kind": "group", "r.1.join": "all", "r.1.not": "on",
        "r.1.0.kind": "condition", "r.1.0.field": "country", "r.1.0.op": "in",
        "r.1.0.value": "GB, FR",
        "r.1.1.kind": "condition", "r.1.1.field": "vip", "r.1.1.op": "=", "r.1.1.value": "true",
        "r.2.kind": "segment", "r.2.segment": "buyers",
        "r.3.kind": "condition", "r.3.field": "email", "r.3.op": "is null", "r.3.value": "x",
    }  # fmt: skip
    rule = builder.to_rule(builder.from_form(form), COLUMNS)
    assert rule == parse_rules(
        {"any": [
            {"field": "age", "op": "between", "value": [18, 30]},
            {"not": {"all": [{"field": "country", "op": "in", "value": ["GB", "FR"]},
                             {"field": "vip", "op": "=", "value": True}]}},
            {"segment": "buyers"},
            {"field": "email", "op": "is null"},
        ]}
    )  # fmt: skip
    # ... and back: any saved rule has a builder form that gives the same rule.
    again = builder.from_rule(rule)
    assert builder.to_rule(again, COLUMNS) == rule


def test_builder_buttons_add_and_remove_rows() -> None:
    root = builder.empty()
    builder.apply(root, "add-group:r")
    builder.apply(root, "add-segment:r.1")
    assert [r.kind for r in root.rows] == ["condition", "group"]
    assert [r.kind for r in root.rows[1].rows] == ["condition", "segment"]
    builder.apply(root, "remove:r.0")
    assert [r.kind for r in root.rows] == ["group"]
    builder.apply(root, "remove:r")  # the top group stays
    for nonsense in ("add-condition:../etc", "remove:r.5", "remove:r.\u00b2", "remove:r.00000"):
        with pytest.raises(UserInputError, match="reload the page"):  # not ignored: said
            builder.apply(root, nonsense)
    assert len(root.rows) == 1


def test_an_empty_builder_says_what_to_do() -> None:
    with pytest.raises(UserInputError, match="add a condition"):
        builder.to_rule(builder.Row(kind="group"), COLUMNS)
    with pytest.raises(UserInputError, match="field"):
        builder.to_rule(builder.empty(), COLUMNS)


# --- charts --------------------------------------------------------------------------


def _run(run_id: int, added: int, removed: int, size: int | None, **extra: object) -> RunView:
    at = datetime(2026, 11, 28, 12, run_id, tzinfo=UTC)
    values: dict[str, object] = {
        "id": run_id, "export": "weekly", "trigger": "api", "requested_by": "admin",
        "status": "succeeded", "dry_run": False, "full": False, "queued_at": at,
        "started_at": at, "finished_at": at,
        "counts": {"added": {"email": added}, "removed": {"email": removed}},
        "progress": {}, "audience": {"approximate_number_users": size},
        "errors": (), "reject_samples": {}, **extra,
    }  # fmt: skip
    return RunView(**values)  # type: ignore[arg-type]


def _reading(reading_id: int, matched: int | None, held: int | None, status: str) -> ReadingView:
    return ReadingView(
        id=reading_id, run_id=1, read_at=datetime(2026, 11, 28, 13, reading_id, tzinfo=UTC),
        trigger="follow_up", approximate_number_users=matched, upload_status=status,
        targetable_status="READY", identifiers_held=held, error=None, drifted=False,
    )  # fmt: skip


def test_the_chart_data_shows_sent_runs_oldest_first_and_no_stale_matched_size() -> None:
    history = [
        _run(3, 0, 0, None, status="running", finished_at=None),
        _run(2, 5, 20, 1000),
        _run(4, 7, 0, None, dry_run=True),
        _run(1, 100, 0, 1100),
    ]
    readings = [_reading(1, 0, 1000, "PROCESSING"), _reading(2, 700, 1000, "COMPLETE")]
    chart = export_chart(history, readings)
    assert chart["runs"] == {
        "labels": ["run 1", "run 2"], "run_ids": [1, 2], "added": [100, 5], "removed": [0, 20],
        "emptied": [0, 0],
    }  # fmt: skip
    audience = chart["audience"]
    assert audience["held"] == [1000, 1000]
    assert audience["matched"] == [None, 700]  # 0 while processing is not a matched size
    assert audience["match_rate"] == [None, 70.0]
    assert str(sparkline([1])) == ""
    assert "polyline" in str(sparkline([1, 5, 3]))


def test_the_chart_counts_an_emptying_as_removals_and_labels_readings_to_the_second() -> None:
    clear = _run(2, 0, 0, None, trigger="clear")
    clear = replace(clear, counts={"cleared": True, "emptied": True, "emptied_held": 998})
    rebuilt = _run(3, 998, 0, 699, replace=True)
    rebuilt = replace(rebuilt, counts={**rebuilt.counts, "emptied": True, "emptied_held": 998})
    history = [_run(1, 998, 0, 699), clear, rebuilt]
    same_minute = [
        replace(
            _reading(1, 699, 998, "COMPLETE"), read_at=datetime(2026, 11, 28, 13, 1, 5, tzinfo=UTC)
        ),
        replace(
            _reading(2, 0, 0, "COMPLETE"), read_at=datetime(2026, 11, 28, 13, 1, 40, tzinfo=UTC)
        ),
    ]
    chart = export_chart(history, same_minute)
    assert chart["runs"]["added"] == [998, 0, 998]
    assert chart["runs"]["removed"] == [0, 998, 998]  # what each emptying removed
    assert chart["runs"]["emptied"] == [0, 1, 1]
    labels = chart["audience"]["labels"]
    assert labels == ["2026-11-28 13:01:05", "2026-11-28 13:01:40"]


def test_a_runs_matched_users_are_its_own_readings_not_later_daily_ones() -> None:
    first, second = _run(1, 998, 0, None), _run(2, 5, 0, None)
    second = replace(second, started_at=datetime(2026, 11, 28, 15, 0, tzinfo=UTC))

    def at(reading_id: int, run_id: int, hour: int, matched: int, status: str) -> ReadingView:
        return replace(
            _reading(reading_id, matched, 998, status), run_id=run_id,
            read_at=datetime(2026, 11, 28, hour, reading_id, tzinfo=UTC),
        )  # fmt: skip

    readings = [
        at(1, 1, 12, 0, "PROCESSING"),  # the run's read-back: still matching
        at(2, 1, 13, 699, "COMPLETE"),  # the follow-up that found it matched
        at(3, 1, 14, 650, "COMPLETE"),  # a daily reading: the audience's, not the run's
        at(4, 2, 16, 700, "COMPLETE"),
        at(5, 2, 17, 20, "COMPLETE"),  # drifted much later: not credited to run 2
    ]
    own = run_readings([second, first], readings)
    assert own[1].id == 2
    assert own[2].id == 4


def test_roles_see_their_own_navigation(api: Api) -> None:
    for name, role in (("admin", Role.ADMIN), ("carol", Role.CONTRIBUTOR)):
        browser, _ = sign_in(api, name)
        try:
            page = browser.get("/connections").text
            assert ("Add connection" in page) is (role is Role.ADMIN)
            assert f'class="badge role-{role.value}"' in page
        finally:
            browser.close()


def _follow_snapchat(browser: httpx.Client, answer: httpx.Response) -> httpx.Response:
    """The browser's trip to Snapchat (the emulator approves at once) and back."""
    assert answer.status_code == 303, answer.text
    with httpx.Client() as snapchat:
        back = snapchat.get(answer.headers["location"]).headers["location"]
    return browser.get(back)


def test_add_and_reauthenticate_a_connection_in_the_ui(api: Api) -> None:
    browser, _ = sign_in(api, "admin")
    try:
        token = csrf_of(browser, "/connections/new")
        started = browser.post(
            "/connections/new",
            data={"csrf_token": token, "name": "Snap UI", "agree": "on", "access": "contributors"},
        )
        landed = _follow_snapchat(browser, started)
        assert landed.headers["location"] == "/connections/new/save"
        save_page = browser.get("/connections/new/save").text
        assert "Authenticated with Snapchat" in save_page
        missing = browser.post("/connections/new/save", data={"csrf_token": token})
        assert missing.status_code == 400
        assert "add yourself as export user" in missing.text
        saved = browser.post(
            "/connections/new/save", data={"csrf_token": token, "export_user": "on"}
        )
        assert saved.headers["location"] == "/connections"
        view = api.admin.get("/api/v1/connections/Snap UI").json()
        assert view["shared_with_contributors"] is True
        assert view["export_user"] == "admin"
        again = browser.post("/connections/reauth", data={"csrf_token": token, "name": "Snap UI"})
        back = _follow_snapchat(browser, again)
        assert back.headers["location"] == "/connections"
        assert "was re-authenticated" in browser.get("/connections").text
    finally:
        browser.close()


def test_segment_form_builder_yaml_and_edit(profiles: Api) -> None:
    browser, _ = sign_in(profiles, "carol")
    try:
        token = csrf_of(browser, "/segments/new")
        base = {"csrf_token": token, "name": "Older", "dataset": "customers",
                "r.kind": "group", "r.join": "all", "r.0.kind": "condition",
                "r.0.field": "age", "r.0.op": ">", "r.0.value": "40"}  # fmt: skip
        grown = browser.post("/segments/new", data={**base, "action": "add-condition:r"})
        assert grown.status_code == 200
        assert 'name="r.1.field"' in grown.text
        assert 'value="40"' in grown.text  # what was typed stays
        as_yaml = browser.post("/segments/new", data={**base, "action": "to-yaml"})
        assert "field: age" in as_yaml.text
        bad = browser.post("/segments/new", data={**base, "r.0.field": "agee", "action": "save"})
        assert bad.status_code == 400
        assert "agee" in bad.text
        saved = browser.post("/segments/new", data={**base, "action": "save"})
        assert saved.headers["location"] == "/segments/older"
        edit = browser.get("/segments/older/edit").text
        assert 'value="40"' in edit
        from_yaml = browser.post(
            "/segments/older/edit",
            data={"csrf_token": token, "action": "save-yaml",
                  "rules_yaml": "{field: country, op: in, value: [GB, FR]}"},
        )  # fmt: skip
        assert from_yaml.headers["location"] == "/segments/older"
        shown = profiles.viewer.get("/api/v1/segments/older").json()
        assert shown["rules"] == {"field": "country", "op": "in", "value": ["GB", "FR"]}
        explain = browser.get("/segments/older/explain", headers={"HX-Request": "true"}).text
        assert "<html" not in explain
        assert 'id="explain-total">3<' in explain
    finally:
        browser.close()


def test_export_form_fields_follow_the_dataset(profiles: Api) -> None:
    browser, _ = sign_in(profiles, "admin")
    try:
        fragment = browser.get(
            "/exports/matching", params={"dataset": "customers"}, headers={"HX-Request": "true"}
        ).text
        assert fragment.lstrip().startswith('<div id="matching">')
        assert "<option>email</option>" in fragment
        assert 'value="everyone"' in fragment
        assert 'value="gb"' in fragment
    finally:
        browser.close()
