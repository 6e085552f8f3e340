"""State that survives a restart (--state), and the ``audiencesync emulator`` command."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx

from audiencesync.emulator.testing import running_emulator, start_emulator_process
from tests.cli_runner import run_cli
from tests.integration.emulator.helpers import (
    bearer_client,
    create_segment,
    hashes,
    segment,
    users_body,
)

TOKEN = "/login/oauth2/access_token"


def test_state_survives_a_restart_in_process(tmp_path: Path) -> None:
    state = tmp_path / "emulator.db"
    emails, phones = hashes(5000, "e"), hashes(10, "p")
    with running_emulator(state_path=state, rate_limit=0) as emu:
        tokens = emu.obtain_tokens()
        with bearer_client(emu, tokens["access_token"]) as api:
            kept = create_segment(api, emu, "kept")
            api.post(f"/v1/segments/{kept}/users", json=users_body(emails))
            api.post(f"/v1/segments/{kept}/users", json=users_body(phones, "PHONE_SHA256"))
            before = segment(api, kept)
    assert state.exists()

    with running_emulator(state_path=state, rate_limit=0) as emu:
        assert emu.members(kept) == set(emails)
        assert emu.members(kept, "PHONE_SHA256") == set(phones)
        with bearer_client(emu, tokens["access_token"]) as api:
            assert segment(api, kept) == before
            assert int(create_segment(api, emu, "new")) > int(kept)
        refreshed = httpx.post(
            f"{emu.auth_url}{TOKEN}",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": emu.client_id,
                "client_secret": emu.client_secret,
            },
        )
        assert refreshed.status_code == 200


def test_save_writes_the_snapshot_while_running(tmp_path: Path) -> None:
    state = tmp_path / "emulator.db"
    with running_emulator(state_path=state) as emu:
        segment_id = emu.create_segment_directly("saved")["id"]
        assert emu.save() is True
        with sqlite3.connect(state) as connection:
            assert connection.execute("SELECT count(*) FROM meta").fetchone()[0] >= 1
        emu.reset()
    with running_emulator(state_path=state) as emu:
        # reset then shutdown saved the empty state over it
        assert [s["id"] for s in emu.state()["segments"]] == []
    with running_emulator() as emu:
        assert emu.save() is False
    assert segment_id


def test_the_emulator_process_prints_its_url_and_keeps_state_across_restarts(
    tmp_path: Path,
) -> None:
    state = tmp_path / "emulator.db"
    values = hashes(1000)
    with start_emulator_process("--state", str(state), "--processing-seconds", "0") as emu:
        assert emu.base_url.startswith("http://127.0.0.1:")
        tokens = emu.obtain_tokens()
        with bearer_client(emu, tokens["access_token"]) as api:
            segment_id = create_segment(api, emu)
            response = api.post(f"/v1/segments/{segment_id}/users", json=users_body(values))
            assert response.status_code == 200
    assert emu.process.returncode == 0

    with start_emulator_process("--state", str(state)) as emu:
        assert emu.members(segment_id) == set(values)
        with bearer_client(emu, tokens["access_token"]) as api:
            assert segment(api, segment_id)["approximate_number_users"] == 700


def test_cli_flags_reach_the_emulator() -> None:
    with start_emulator_process(
        "--client-id",
        "my-app",
        "--client-secret",
        "s3cret",
        "--redirect-uri",
        "http://127.0.0.1:9000/cb",
        "--redirect-uri",
        "https://app.example/cb",
        "--token-ttl",
        "60",
        "--match-rate",
        "0.5",
        "--rate-limit",
        "3",
        "--fail-503",
        "0.25",
        "--latency-ms",
        "5",
        "--auto-approve",
    ) as emu:
        state = emu.state()
        assert (emu.client_id, emu.client_secret) == ("my-app", "s3cret")
        assert state["redirect_uris"] == ["http://127.0.0.1:9000/cb", "https://app.example/cb"]
        assert state["settings"]["token_ttl"] == 60
        assert state["settings"]["match_rate"] == 0.5
        assert state["settings"]["rate_limit"] == 3
        assert state["settings"]["auto_approve"] is True
        assert state["faults"]["fail_503"] == 0.25
        assert state["faults"]["latency_ms"] == 5
        assert emu.obtain_tokens(redirect_uri="https://app.example/cb")["expires_in"] == 60


def test_bad_flags_and_a_bad_state_file_end_in_one_sentence(tmp_path: Path) -> None:
    result = run_cli("emulator", "--port", "0", "--match-rate", "2", home=tmp_path)
    assert result.code == 2
    assert "match rate must be between 0 and 1" in result.stderr
    assert "Traceback" not in result.output

    not_a_snapshot = tmp_path / "notes.txt"
    not_a_snapshot.write_text("hello")
    result = run_cli("emulator", "--port", "0", "--state", str(not_a_snapshot), home=tmp_path)
    assert result.code == 2
    assert "cannot be read as an emulator snapshot" in result.stderr
    assert "Traceback" not in result.output
