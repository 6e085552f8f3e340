"""Alerts delivered by apprise to a real SMTP server and a real webhook receiver.

The runs go to the emulator over real HTTP; the alerts leave over loopback to an
aiosmtpd server and an http.server thread. Retry sleeps are injected (recorded, not slept).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from audiencesync.control.context import Context
from audiencesync.control.models import Role
from audiencesync.control.permissions import Actor
from audiencesync.emulator.testing import EmulatorHandle
from audiencesync.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    UserInputError,
)
from audiencesync.identifiers import hash_value
from audiencesync.sync import alerts, connections, exports, runs
from audiencesync.sync.alerts import AlertEvent
from audiencesync.sync.destinations import load_tokens
from audiencesync.sync.exports import ExportSpec
from audiencesync.types import IdentifierType
from tests.alert_receivers import Mailbox, Webhook, free_port, smtp_server, webhook_receiver
from tests.snap_helpers import connect, load_profiles, sign_in

HEX64 = re.compile(r"[0-9a-f]{64}")


@pytest.fixture
def admin(actors: dict[Role, Actor]) -> Actor:
    return actors[Role.ADMIN]


@pytest.fixture
def hook() -> Iterator[Webhook]:
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as box:
        yield box


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retry waits asked for by deliveries (none is actually slept)."""
    asked: list[float] = []
    monkeypatch.setattr(alerts, "sleep", asked.append)
    return asked


def _export(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, name: str, channels: tuple[str, ...]
) -> str:
    audience_id = str(emulator.create_segment_directly(f"Customers {name}")["id"])
    exports.add_export(
        ctx, admin,
        ExportSpec(name=name, connection="Snap", segments=("everyone",), email_field="email",
                   phone_field="phone", audience_id=audience_id, alert_channels=channels),
    )  # fmt: skip
    return audience_id


@pytest.fixture
def setup(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, tmp_path: Path, hook: Webhook,
    mailbox: Mailbox, sleeps: list[float],
) -> None:  # fmt: skip
    connect(ctx, admin, "Snap", share=True)
    load_profiles(ctx, admin, tmp_path)
    alerts.add_channel(ctx, admin, "hook", hook.url())
    alerts.add_channel(ctx, admin, "mail", mailbox.url())


def _personal_values() -> list[str]:
    emails = ["ann@example.com", "bob@example.org", "dora@example.net", "not-an-email"]
    hashes = [hash_value(IdentifierType.EMAIL, e) or "" for e in emails[:3]]
    return [*emails, *(h for h in hashes if h)]


def _assert_no_secrets(body: str, secrets: list[str]) -> None:
    for value in [*secrets, *_personal_values()]:
        assert value not in body
    assert "@" not in body
    assert not HEX64.search(body)


@pytest.mark.usefixtures("setup")
def test_a_revoked_grant_alerts_once_per_channel_and_a_later_success_recovers(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, hook: Webhook, mailbox: Mailbox
) -> None:
    _export(ctx, admin, emulator, "main", ("hook", "mail"))
    _export(ctx, admin, emulator, "second", ("hook",))
    assert runs.run_now(ctx, admin, "second").status == "succeeded"
    assert hook.messages() == []  # a healthy run says nothing

    connection_id = _connection_id(ctx)
    tokens = load_tokens(ctx, connection_id)
    secrets = [tokens.access_token, tokens.refresh_token]
    # What the run record says at the moment each alert arrives.
    recorded: list[str] = []
    hook.on_receive = lambda _path, _body: recorded.append(
        runs.list_runs(ctx, admin, export="main", limit=1)[0].status
    )
    emulator.revoke_tokens()
    emulator.expire_tokens()
    failed = runs.run_now(ctx, admin, "main")
    assert failed.status == "failed"
    # Raised mid-run, the needs_reauth alert was still sent after the outcome was written.
    assert recorded == ["failed", "failed"]
    # The connection is marked: the next runs are refused, and no new alert is raised.
    for name in ("main", "second"):
        with pytest.raises(ConflictError, match="needs re-authentication"):
            runs.run_now(ctx, admin, name)

    reauth_title = "connection needs re-authentication"
    hook_reauth = [m for m in hook.messages() if reauth_title in m["title"]]
    assert len(hook_reauth) == 1  # the channel of two exports hears it once
    assert "main, second" in hook_reauth[0]["message"]
    assert "Re-authenticate with Snapchat" in hook_reauth[0]["message"]
    assert "'Snap'" in hook_reauth[0]["message"]
    mail_reauth = [m for m in mailbox.messages if reauth_title in str(m["subject"])]
    assert len(mail_reauth) == 1
    hook_failed = [m for m in hook.messages() if "run failed" in m["title"]]
    assert len(hook_failed) == 1
    assert f"Run: {failed.id}" in hook_failed[0]["message"]
    assert "re-authenticat" in hook_failed[0]["message"]
    for message in hook.messages():
        _assert_no_secrets(message["title"] + message["message"], secrets)
    for body in mailbox.texts():
        _assert_no_secrets(body, secrets)

    # The same transition noticed again (another process) alerts nobody again.
    assert alerts.connection_needs_reauth(ctx, connection_id) == []

    authorization, code, state = sign_in(ctx, admin)
    fresh = connections.finish_authorization(ctx, admin, authorization, code=code, state=state)
    connections.reauthenticate(ctx, admin, "Snap", fresh)
    recovered = runs.run_now(ctx, admin, "main")
    assert recovered.status == "succeeded", recovered.errors
    hook_recovered = [m for m in hook.messages() if "recovered" in m["title"]]
    assert len(hook_recovered) == 1
    assert (
        f"run {recovered.id} succeeded after run {failed.id} failed"
        in (hook_recovered[0]["message"])
    )
    assert len([m for m in mailbox.messages if "recovered" in str(m["subject"])]) == 1
    # "second" did not fail, but its runs were refused while the connection needed
    # re-authentication (its channel was told so): its first success is a recovery too,
    # and only its first.
    assert runs.run_now(ctx, admin, "second").status == "succeeded"
    second = [m for m in hook.messages() if "recovered" in m["title"]][1:]
    assert len(second) == 1
    assert "connection Snap needed re-authentication" in second[0]["message"]
    assert runs.run_now(ctx, admin, "second").status == "succeeded"
    assert len([m for m in hook.messages() if "recovered" in m["title"]]) == 2

    deliveries = alerts.list_deliveries(ctx, admin)
    assert {d.status for d in deliveries} == {alerts.DELIVERED}
    by_event = sorted((d.event, d.channel) for d in deliveries)
    assert by_event == [
        ("needs_reauth", "hook"), ("needs_reauth", "mail"),
        ("recovered", "hook"), ("recovered", "hook"), ("recovered", "mail"),
        ("run_failed", "hook"), ("run_failed", "mail"),
    ]  # fmt: skip


@pytest.mark.usefixtures("setup")
def test_a_broken_channel_never_fails_the_run_and_its_delivery_is_recorded_failed(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, hook: Webhook, sleeps: list[float]
) -> None:
    alerts.add_channel(ctx, admin, "nobody", f"json://127.0.0.1:{free_port()}/hook")
    _export(ctx, admin, emulator, "main", ("nobody", "hook"))
    with ctx.db.session() as session:
        export_id = exports.get_row(session, "main").id
        # One email of four is invalid (25% of the email values): over a 10% threshold.
        alerts.set_export_alerts(session, export_id, reject_share_threshold=0.1)
    view = runs.run_now(ctx, admin, "main")
    assert view.status == "succeeded", view.errors

    deliveries = alerts.list_deliveries(ctx, admin)
    broken = next(d for d in deliveries if d.channel == "nobody")
    assert broken.event == "reject_share"
    assert broken.status == alerts.FAILED
    assert broken.attempts == ctx.settings.alert_attempts == 3
    assert broken.error is not None
    assert "127.0.0.1" in broken.error
    assert sleeps == [2.0, 4.0]  # the retries waited (injected), doubling
    working = next(d for d in deliveries if d.channel == "hook")
    assert working.status == alerts.DELIVERED
    assert working.attempts == 1
    [message] = hook.messages()
    # 1 invalid email of 4 emails present; 3 phones present, 1 empty (not a reject).
    rejected, present = 1, 4 + 3
    assert f"rejected {rejected / present:.1%}" in message["message"]
    assert f"({rejected} of {present})" in message["message"]
    assert runs.get_run(ctx, admin, view.id).status == "succeeded"


@pytest.mark.usefixtures("setup")
def test_events_an_export_did_not_choose_are_not_sent(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, hook: Webhook
) -> None:
    _export(ctx, admin, emulator, "main", ("hook",))
    view = exports.update_export(
        ctx, admin, "main",
        ExportSpec(**{**exports.spec_of(exports.get_export(ctx, admin, "main")).__dict__,
                      "alert_events": ("recovered",)}),
    )  # fmt: skip
    assert view.alerts.channels == ("hook",)
    assert view.alerts.events == ("recovered",)
    emulator.revoke_tokens()
    emulator.expire_tokens()
    assert runs.run_now(ctx, admin, "main").status == "failed"
    assert hook.messages() == []
    assert alerts.list_deliveries(ctx, admin) == []
    # Removing the export removes its choices; the channel stays.
    exports.remove_export(ctx, admin, "main")
    [channel] = [c for c in alerts.list_channels(ctx, admin) if c.name == "hook"]
    assert channel.exports == ()
    with ctx.db.engine.connect() as connection:
        left = connection.execute(text("SELECT count(*) FROM export_alert_settings")).scalar()
    assert left == 0


PASSWORD = "S3cret-Pa55word"


@pytest.mark.usefixtures("sleeps")
@pytest.mark.usefixtures("setup")
def test_a_slack_compatible_webhook_gets_the_alert_as_text(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, hook: Webhook
) -> None:
    # A Mattermost incoming webhook takes Slack's {"text": ...} payload; unlike slack://,
    # apprise can send it to a local host.
    chat = alerts.add_channel(ctx, admin, "chat", f"mmost://127.0.0.1:{hook.port}/t0kenabc123")
    assert chat.display == f"mmost://127.0.0.1:{hook.port}"
    _export(ctx, admin, emulator, "main", ("chat",))
    emulator.revoke_tokens()
    emulator.expire_tokens()
    failed = runs.run_now(ctx, admin, "main")
    texts = [body["text"] for body in hook.messages("/hooks/t0kenabc123")]
    assert len(texts) == 2
    assert any(
        t.startswith("audiencesync: main: connection needs re-authentication") for t in texts
    )
    assert any(f"Run: {failed.id}" in t and "run failed" in t for t in texts)
    assert {body["username"] for body in hook.messages("/hooks/t0kenabc123")} == {"audiencesync"}


def test_channel_urls_are_encrypted_at_rest_and_shown_as_scheme_and_host(
    ctx: Context, actors: dict[Role, Actor]
) -> None:
    password = PASSWORD
    with smtp_server(login=("alerts", password)) as mailbox:
        _check_encrypted_mail_channel(ctx, actors, mailbox, password)


def _check_encrypted_mail_channel(
    ctx: Context, actors: dict[Role, Actor], mailbox: Mailbox, password: str
) -> None:
    admin = actors[Role.ADMIN]
    url = (
        f"mailto://alerts:{password}@127.0.0.1:{mailbox.port}"
        "?from=alerts@example.com&to=ops@example.com&mode=insecure"
    )
    view = alerts.add_channel(ctx, admin, "mail", url)
    assert (view.scheme, view.host, view.display) == (
        "mailto",
        f"127.0.0.1:{mailbox.port}",
        f"mailto://127.0.0.1:{mailbox.port}",
    )
    with ctx.db.engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM alert_channels")).all()
    raw = " ".join(str(v) for v in rows[0])
    assert password not in raw
    assert "ops@example.com" not in raw
    assert "alerts:" not in raw
    assert ctx.secrets.decrypt(rows[0].url_ciphertext) == url

    delivery = alerts.test_channel(ctx, admin, "mail")
    assert delivery.status == alerts.DELIVERED
    [body] = mailbox.texts()
    assert body.strip() == "A test alert from audiencesync, sent by admin to channel mail."
    assert str(mailbox.messages[0]["subject"]) == "audiencesync: test alert"
    assert str(mailbox.messages[0]["x-application"]) == "audiencesync"

    # Slack's "host" is a key: it is not shown.
    slack = alerts.add_channel(ctx, admin, "slack", "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnl")
    assert slack.display == "slack://…"
    with pytest.raises(PermissionDeniedError):
        alerts.list_channels(ctx, actors[Role.CONTRIBUTOR])
    with pytest.raises(PermissionDeniedError):
        alerts.add_channel(ctx, actors[Role.CONTRIBUTOR], "x", url)
    assert alerts.channel_names(ctx, actors[Role.CONTRIBUTOR]) == ["mail", "slack"]


def test_bad_channels_and_events_get_one_sentence(ctx: Context, admin: Actor) -> None:
    with pytest.raises(UserInputError, match="cannot send to this nosuch:// URL"):
        alerts.add_channel(ctx, admin, "x", "nosuch://host/path")
    with pytest.raises(UserInputError, match="starts with a scheme"):
        alerts.add_channel(ctx, admin, "x", "justwords")
    with pytest.raises(UserInputError, match="1 to 2000 characters"):
        alerts.add_channel(ctx, admin, "x", "json://h/" + "a" * 3000)
    with pytest.raises(UserInputError, match="'run_faild' is not an alert event"):
        alerts.parse_events("run_faild,recovered")
    assert alerts.parse_events("recovered, run_failed") == (
        AlertEvent.RUN_FAILED,
        AlertEvent.RECOVERED,
    )
    assert alerts.parse_events(None) == alerts.ALL_EVENTS
    alerts.add_channel(ctx, admin, "hook", "json://127.0.0.1:9/hook")
    with pytest.raises(ConflictError, match="already exists"):
        alerts.add_channel(ctx, admin, "hook", "json://127.0.0.1:9/hook")
    with pytest.raises(NotFoundError, match="no alert channel named 'nope'"):
        alerts.remove_channel(ctx, admin, "nope")
    assert alerts.remove_channel(ctx, admin, "hook") == []


def test_scrub_takes_out_what_looks_personal_or_secret() -> None:
    digest = hash_value(IdentifierType.EMAIL, "ann@example.com") or ""
    said = alerts.scrub(
        f"ann@example.com failed with {digest} and token eyJhbGciOi1234567890abcdefghijKLMNOP"
    )
    assert said == "[redacted] failed with [redacted] and token [redacted]"
    assert alerts.scrub("export main run 12 failed: Snapchat said 500") == (
        "export main run 12 failed: Snapchat said 500"
    )


def _connection_id(ctx: Context) -> int:
    with ctx.db.session() as session:
        return connections.get_row(session, "Snap").id


@pytest.mark.usefixtures("setup")
def test_a_delivery_left_by_a_dead_process_is_sent_by_the_next_sweep(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, hook: Webhook
) -> None:
    _export(ctx, admin, emulator, "main", ("hook",))
    with ctx.db.session() as session:
        export_id = exports.get_row(session, "main").id
    [deferred] = alerts.emit(
        ctx, export_id, AlertEvent.AUDIENCE_DRIFT, "Snapchat reports 0 users; 3 are held.",
        {"Held": 3}, dedupe_key="drift:test", defer=True,
    )  # fmt: skip
    assert alerts.get_delivery(ctx, deferred).status == alerts.PENDING
    # Claimed, then the process died (long ago): still unsent.
    with ctx.db.engine.begin() as connection:
        connection.execute(
            text("UPDATE alert_deliveries SET status = 'sending', created_at = :old"),
            {"old": datetime(2026, 1, 1, tzinfo=UTC)},
        )
    assert alerts.deliver_pending(ctx) == 1
    assert alerts.get_delivery(ctx, deferred).status == alerts.DELIVERED
    [message] = hook.messages()
    assert message["title"] == "audiencesync: main: audience may have drifted"
    assert "Held: 3" in message["message"]
    # The same occurrence again: nothing new.
    assert (
        alerts.emit(ctx, export_id, AlertEvent.AUDIENCE_DRIFT, "again", dedupe_key="drift:test")
        == []
    )


@pytest.mark.usefixtures("setup")
def test_a_held_mass_removal_alerts_both_channels_and_approval_empties_the_audience(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, hook: Webhook, mailbox: Mailbox
) -> None:
    from audiencesync.segments import service as segments
    from audiencesync.segments.rules import parse_rules

    audience_id = _export(ctx, admin, emulator, "main", ("hook", "mail"))
    first = runs.run_now(ctx, admin, "main")
    assert first.status == "succeeded", first.errors
    before = {s: emulator.members(audience_id, s) for s in ("EMAIL_SHA256", "PHONE_SHA256")}
    assert before["EMAIL_SHA256"]
    # The segment now matches nobody: a mirror run would empty the audience.
    segments.update_segment(
        ctx, admin, "everyone", rules=parse_rules({"field": "customer_id", "op": "is null"})
    )
    held = runs.run_now(ctx, admin, "main")
    assert held.status == "needs_approval", held.errors
    after = {s: emulator.members(audience_id, s) for s in ("EMAIL_SHA256", "PHONE_SHA256")}
    assert after == before  # nothing was removed without a question
    title = "needs approval"
    assert len([m for m in hook.messages() if title in m["title"]]) == 1
    assert len([m for m in mailbox.messages if title in str(m["subject"])]) == 1
    # The alert carries the guard's sentence: how many removals it holds and why.
    sentence = held.counts["guard"]["message"]
    assert "segments now match nobody" in sentence
    (approval_alert,) = [m for m in hook.messages() if title in m["title"]]
    assert sentence in approval_alert["message"]
    # The plain-text part of the email keeps the body's line breaks.
    (text,) = [t for t in mailbox.texts() if "needs approval" in t]
    assert sentence in " ".join(text.split())
    assert "\nExport: main\n" in text.replace("\r\n", "\n"), text
    assert f"\nRun: {held.id}\n" in text.replace("\r\n", "\n"), text
    for message in hook.messages():
        _assert_no_secrets(message["title"] + message["message"], [])

    approval = runs.approve_now(ctx, admin, held.id)
    assert approval.status == "succeeded", approval.errors
    assert sum(emulator.member_counts(audience_id).values()) == 0
    assert runs.get_run(ctx, admin, held.id).status == "approved"


@pytest.mark.usefixtures("setup")
def test_an_audience_emptied_behind_our_back_alerts_drift_once(
    ctx: Context,
    admin: Actor,
    emulator: EmulatorHandle,
    hook: Webhook,
    mailbox: Mailbox,
    tmp_path: Path,
) -> None:
    from audiencesync.profiles import store
    from audiencesync.profiles.synthetic import write_profiles
    from audiencesync.segments import service as segments
    from audiencesync.segments.rules import parse_rules
    from tests.integration.emulator.helpers import bearer_client

    emulator.set_settings(processing_seconds=0)
    # Enough people for the match-rate model to judge (at least 100 identifiers held).
    source = write_profiles(tmp_path / "many.parquet", 600)
    store.import_file(ctx, admin, source, key="customer_id", name="many")
    segments.create_segment(
        ctx, admin, "many_all", dataset="many",
        rules=parse_rules({"field": "customer_id", "op": "is not null"}),
    )  # fmt: skip
    audience_id = str(emulator.create_segment_directly("Many")["id"])
    exports.add_export(
        ctx, admin,
        ExportSpec(name="main", connection="Snap", segments=("many_all",), email_field="email",
                   audience_id=audience_id, alert_channels=("hook", "mail")),
    )  # fmt: skip
    assert runs.run_now(ctx, admin, "main").status == "succeeded"
    with bearer_client(emulator, emulator.obtain_tokens()["access_token"]) as api:
        assert api.delete(f"/v1/segments/{audience_id}/all_users").status_code == 200
    reading = runs.read_audience(ctx, admin, "main")
    assert reading.drifted
    drift_alerts = [m for m in hook.messages() if "drift" in m["title"].lower()]
    assert len(drift_alerts) == 1, hook.messages()
    assert "Matched users reported: 0" in drift_alerts[0]["message"]
    assert len([m for m in mailbox.messages if "drift" in str(m["subject"]).lower()]) == 1
    _assert_no_secrets(drift_alerts[0]["title"] + drift_alerts[0]["message"], [])
    # Read again: the same drift is not announced again.
    runs.read_audience(ctx, admin, "main")
    assert len([m for m in hook.messages() if "drift" in m["title"].lower()]) == 1


def _alerts_titled(hook: Webhook, words: str) -> list[dict[str, Any]]:
    return [m for m in hook.messages() if words in m["title"]]


@pytest.mark.usefixtures("setup")
def test_recovered_follows_a_partial_success_or_a_reauthentication_exactly_once(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, hook: Webhook
) -> None:
    _export(ctx, admin, emulator, "main", ("hook",))
    assert runs.run_now(ctx, admin, "main").status == "succeeded"
    # The audience cannot be read back: the run sent everything but partly succeeded.
    emulator.set_faults(fail_500=1.0, only_kinds=["get_segment"])
    partial = runs.run_now(ctx, admin, "main", full=True)
    emulator.clear_faults()
    assert partial.status == "partially_succeeded", (partial.status, partial.errors)
    ok = runs.run_now(ctx, admin, "main")
    assert ok.status == "succeeded", ok.errors
    recovered = _alerts_titled(hook, "recovered")
    assert len(recovered) == 1
    assert (
        f"run {ok.id} succeeded after run {partial.id} only partly succeeded"
        in (recovered[0]["message"])
    )
    assert runs.run_now(ctx, admin, "main").status == "succeeded"
    assert len(_alerts_titled(hook, "recovered")) == 1  # once, not after every success

    # The grant is refused outside any run (an audience reading): no run failed, but the
    # export could not run until an administrator re-authenticated the connection.
    emulator.revoke_tokens()
    emulator.expire_tokens()
    unread = runs.read_audience(ctx, admin, "main")
    assert unread.error is not None  # stored as a failed reading
    assert len(_alerts_titled(hook, "connection needs re-authentication")) == 1
    authorization, code, state = sign_in(ctx, admin)
    fresh = connections.finish_authorization(ctx, admin, authorization, code=code, state=state)
    connections.reauthenticate(ctx, admin, "Snap", fresh)
    back = runs.run_now(ctx, admin, "main")
    assert back.status == "succeeded", back.errors
    recovered = _alerts_titled(hook, "recovered")
    assert len(recovered) == 2
    assert "connection Snap needed re-authentication" in recovered[1]["message"]
    assert runs.run_now(ctx, admin, "main").status == "succeeded"
    assert len(_alerts_titled(hook, "recovered")) == 2


@pytest.mark.usefixtures("setup")
def test_the_reject_share_alert_fires_when_the_share_crosses_above_not_on_every_run(
    ctx: Context, admin: Actor, emulator: EmulatorHandle, hook: Webhook
) -> None:
    from audiencesync.control.sync_models import Export
    from audiencesync.segments import service as segments
    from audiencesync.segments.rules import parse_rules

    _export(ctx, admin, emulator, "main", ("hook",))
    with ctx.db.session() as session:
        export_id = session.scalar(select(Export.id).where(Export.name == "main"))
        assert export_id is not None
        alerts.set_export_alerts(session, export_id, reject_share_threshold=0.1)
    # 1 of the 7 values present is invalid (14%), above 10%: alerted once.
    first = runs.run_now(ctx, admin, "main")
    assert alerts.reject_share(first.counts) == (1, 7)
    assert len(_alerts_titled(hook, "many identifiers rejected")) == 1
    assert runs.run_now(ctx, admin, "main").status == "succeeded"
    assert len(_alerts_titled(hook, "many identifiers rejected")) == 1  # still above: quiet
    # The invalid value leaves the segment: back under the threshold, nothing is sent.
    segments.update_segment(
        ctx, admin, "everyone", rules=parse_rules({"field": "customer_id", "op": "!=", "value": 3})
    )
    clean = runs.run_now(ctx, admin, "main")
    assert clean.status == "succeeded", clean.errors
    assert alerts.reject_share(clean.counts)[0] == 0
    assert len(_alerts_titled(hook, "many identifiers rejected")) == 1
    # It comes back: the share crosses above again, alerted again.
    segments.update_segment(
        ctx, admin, "everyone", rules=parse_rules({"field": "customer_id", "op": "is not null"})
    )
    again = runs.run_now(ctx, admin, "main")
    assert again.status == "succeeded", again.errors
    fired = _alerts_titled(hook, "many identifiers rejected")
    assert len(fired) == 2
    assert f"Run: {again.id}" in fired[1]["message"]
