"""Admin > Alerts and the export form's alert fields, over HTTP without a browser."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from audiencesync.control.models import Role
from audiencesync.sync import alerts, runs
from tests.alert_receivers import Webhook, webhook_receiver
from tests.integration.api.conftest import Api, add_export_via_api, connect_via_api
from tests.integration.api.test_auth import sign_in
from tests.integration.api.test_web_pages import csrf_of

SECRET_PATH = "/hooks/pr1vate-k3y"


@pytest.fixture
def hook() -> Iterator[Webhook]:
    with webhook_receiver() as receiver:
        yield receiver


def test_the_alerts_page_adds_tests_and_lists_channels_and_deliveries(
    profiles: Api, hook: Webhook
) -> None:
    api = profiles
    admin, _ = sign_in(api, "admin")
    carol, _ = sign_in(api, "carol")
    try:
        assert "No channel yet" in admin.get("/alerts").text
        assert 'href="/alerts"' in admin.get("/exports").text
        assert 'href="/alerts"' not in carol.get("/exports").text
        assert carol.get("/alerts").status_code == 403

        token = csrf_of(admin, "/alerts")
        bad = admin.post("/alerts", data={"csrf_token": token, "name": "x", "url": "nosuch://a/b"})
        assert bad.status_code == 400
        assert "apprise cannot send to this nosuch:// URL" in bad.text
        added = admin.post(
            "/alerts", data={"csrf_token": token, "name": "ops", "url": hook.url(SECRET_PATH)}
        )
        assert added.status_code == 303
        page = admin.get("/alerts").text
        assert f"json://127.0.0.1:{hook.port}" in page
        assert "pr1vate-k3y" not in page
        tested = admin.post("/alerts/ops/test", data={"csrf_token": token})
        assert tested.status_code == 303
        page = admin.get("/alerts").text
        assert "A test alert was delivered to ops." in page
        assert "status-delivered" in page
        assert len(hook.messages(SECRET_PATH)) == 1

        connect_via_api(api, share=True)
        made = add_export_via_api(api, api.contributor)
        assert made.status_code == 201, made.text
        audience_id = made.json()["audience_id"]
        form = carol.get("/exports/weekly/edit").text
        assert 'name="alert_channels" value="ops"' in form
        assert 'name="alert_events" value="run_failed" checked' in form
        token = csrf_of(carol, "/exports/weekly/edit")
        fields = {
            "csrf_token": token, "editing": "1", "name": "weekly", "connection": "Snap",
            "audience_choice": "existing", "audience_id": audience_id, "dataset": "customers",
            "email_field": "email", "segments": "everyone", "mode": "mirror",
            "schedule": "manual", "timezone": "UTC", "enabled": "on", "alerts_form": "1",
            "alert_channels": "ops", "alert_reject_share": "10",
        }  # fmt: skip
        refused = carol.post("/exports/weekly/edit", data=fields)
        assert refused.status_code == 400
        assert "tick at least one alert event" in refused.text
        saved = carol.post(
            "/exports/weekly/edit",
            data={**fields, "alert_events": ["run_failed", "reject_share"]},
        )
        assert saved.status_code == 303, saved.text
        shown = carol.get("/exports/weekly").text
        assert "run_failed, reject_share → ops" in shown
    finally:
        admin.close()
        carol.close()

    # One invalid email of four values: 25% rejected, over the 10% chosen.
    admin_actor = api.actors[Role.ADMIN]
    view = runs.run_now(api.ctx, admin_actor, "weekly")
    assert view.status == "succeeded", view.errors
    chosen = [d for d in alerts.list_deliveries(api.ctx, admin_actor) if d.event != "test"]
    assert [(d.event, d.status) for d in chosen] == [("reject_share", alerts.DELIVERED)]
    assert (
        "rejected 25.0% of its identifier values (1 of 4)"
        in hook.messages(SECRET_PATH)[-1]["message"]
    )
