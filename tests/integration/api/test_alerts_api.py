"""``/api/v1/alerts`` and the export alert fields, over real HTTP, alerts to a real receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from audiencesync.sync import alerts
from tests.alert_receivers import Webhook, webhook_receiver
from tests.integration.api.conftest import Api, add_export_via_api, connect_via_api


@pytest.fixture
def hook() -> Iterator[Webhook]:
    with webhook_receiver() as receiver:
        yield receiver


def test_channels_are_admin_only_and_never_show_their_url(profiles: Api, hook: Webhook) -> None:
    api = profiles
    secret_url = hook.url("/hooks/k3y-that-is-secret")
    body = {"name": "ops", "url": secret_url}
    refused = api.contributor.post("/api/v1/alerts/channels", json=body)
    assert refused.status_code == 403
    made = api.admin.post("/api/v1/alerts/channels", json=body)
    assert made.status_code == 201, made.text
    assert made.json()["display"] == f"json://127.0.0.1:{hook.port}"
    assert api.viewer.get("/api/v1/alerts/channels").status_code == 403
    listed = api.admin.get("/api/v1/alerts/channels")
    assert [c["name"] for c in listed.json()] == ["ops"]
    bad = api.admin.post("/api/v1/alerts/channels", json={"name": "x", "url": "nosuch://a/b"})
    assert bad.status_code == 400
    assert bad.json()["detail"].startswith("apprise cannot send to this nosuch:// URL")
    assert api.admin.get("/api/v1/alerts/events").json() == [e.value for e in alerts.ALL_EVENTS]

    tested = api.admin.post("/api/v1/alerts/channels/ops/test")
    assert tested.status_code == 200
    assert tested.json()["status"] == "delivered"
    assert [m["title"] for m in hook.messages("/hooks/k3y-that-is-secret")] == [
        "audiencesync: test alert"
    ]

    connect_via_api(api, share=True)
    created = add_export_via_api(
        api, api.contributor, alert_channels=["ops"], alert_events=["run_failed", "recovered"],
        alert_reject_share=0.5,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    assert created.json()["alert_channels"] == ["ops"]
    assert created.json()["alert_events"] == ["run_failed", "recovered"]
    assert created.json()["alert_reject_share"] == 0.5
    unknown = api.contributor.patch("/api/v1/exports/weekly", json={"alert_events": ["nope"]})
    assert unknown.status_code == 400
    assert "'nope' is not an alert event" in unknown.json()["detail"]
    cleared = api.contributor.patch("/api/v1/exports/weekly", json={"alert_channels": []})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["alert_channels"] == []
    assert cleared.json()["alert_events"] == ["run_failed", "recovered"]

    deliveries = api.admin.get("/api/v1/alerts/deliveries").json()
    assert [(d["event"], d["channel"], d["status"]) for d in deliveries] == [
        ("test", "ops", "delivered")
    ]
    assert api.contributor.get("/api/v1/alerts/deliveries").status_code == 403
    for url, response in api.recorder.responses:
        assert "k3y-that-is-secret" not in response, url
    with api.ctx.db.engine.connect() as connection:
        raw = str(connection.execute(text("SELECT * FROM alert_channels")).all())
    assert "k3y-that-is-secret" not in raw
    assert api.admin.delete("/api/v1/alerts/channels/ops").status_code == 204
    assert api.admin.delete("/api/v1/alerts/channels/ops").status_code == 404
