"""Tokens rotated while a connection is made or re-authenticated are the ones saved.

Snap (and the emulator) rotate the refresh token on every refresh: the old one stops
working. A connection saved with the token set it was created with, after its own
checks refreshed it, would ask for re-authentication on its next use (issue 12).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session

from audiencesync.control.context import Context
from audiencesync.control.models import Role
from audiencesync.control.permissions import Actor
from audiencesync.control.sync_models import Connection
from audiencesync.destinations.snapchat.oauth import TokenSet
from audiencesync.emulator.testing import EmulatorHandle
from audiencesync.errors import ReauthenticationRequiredError
from audiencesync.sync import connections, destinations
from audiencesync.sync.destinations import load_tokens, open_destination
from tests.snap_helpers import sign_in


def _use(ctx: Context, name: str) -> None:
    """Open the saved connection with its stored tokens, expired, as the next command."""
    with ctx.db.session() as session:
        row = session.query(Connection).filter_by(name=name).one()
    destination = open_destination(ctx, row)
    try:
        destination.check_connection()
    finally:
        destination.close()


def test_a_connection_keeps_the_refresh_token_its_checks_rotated(
    ctx: Context, actors: dict[Role, Actor], emulator: EmulatorHandle
) -> None:
    admin = actors[Role.ADMIN]
    authorization, code, state = sign_in(ctx, admin)
    tokens = connections.finish_authorization(ctx, admin, authorization, code=code, state=state)
    emulator.expire_tokens()  # the checks meet a 401, refresh, and Snap rotates
    connections.create_snapchat_connection(
        ctx, admin, "Snap", share_with_contributors=False, agreed=True, tokens=tokens
    )
    saved = load_tokens(ctx, 1)
    assert saved.refresh_token != tokens.refresh_token  # the rotated set, not the first
    emulator.expire_tokens()  # the next command must refresh with what was saved
    _use(ctx, "Snap")
    assert connections.get_connection(ctx, admin, "Snap").status == "active"


def test_reauthentication_keeps_the_refresh_token_its_checks_rotated(
    ctx: Context, actors: dict[Role, Actor], emulator: EmulatorHandle
) -> None:
    admin = actors[Role.ADMIN]
    authorization, code, state = sign_in(ctx, admin)
    first = connections.finish_authorization(ctx, admin, authorization, code=code, state=state)
    connections.create_snapchat_connection(
        ctx, admin, "Snap", share_with_contributors=False, agreed=True, tokens=first
    )
    authorization, code, state = sign_in(ctx, admin)
    tokens = connections.finish_authorization(ctx, admin, authorization, code=code, state=state)
    emulator.expire_tokens()
    connections.reauthenticate(ctx, admin, "Snap", tokens)
    assert load_tokens(ctx, 1).refresh_token != tokens.refresh_token
    emulator.expire_tokens()
    _use(ctx, "Snap")
    assert connections.get_connection(ctx, admin, "Snap").status == "active"


def _two_workers(
    ctx: Context,
    actors: dict[Role, Actor],
    emulator: EmulatorHandle,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Actor, list[TokenSet], Callable[[], None]]:
    """Worker A refreshes expired tokens (Snap rotates them) but has not committed the
    new set yet: returns the admin, A's uncommitted sets and a function committing them."""
    admin = actors[Role.ADMIN]
    authorization, code, state = sign_in(ctx, admin)
    tokens = connections.finish_authorization(ctx, admin, authorization, code=code, state=state)
    connections.create_snapchat_connection(
        ctx, admin, "Snap", share_with_contributors=False, agreed=True, tokens=tokens
    )
    with ctx.db.session() as session:
        row = session.query(Connection).filter_by(name="Snap").one()
    worker_a = open_destination(ctx, row)
    emulator.expire_tokens()
    pending: list[TokenSet] = []
    real_save = destinations.save_tokens

    def held(session: Session, ctx_: Context, connection_id: int, new: TokenSet) -> None:
        pending.append(new)  # a commit still on its way

    monkeypatch.setattr(destinations, "save_tokens", held)
    worker_a.check_connection()
    worker_a.close()
    monkeypatch.setattr(destinations, "save_tokens", real_save)
    assert pending  # A refreshed: the stored refresh token no longer works

    def commit() -> None:
        with ctx.db.session() as session:
            real_save(session, ctx, row.id, pending[-1])

    return admin, pending, commit


def test_a_refresh_refused_while_another_worker_commits_its_rotation_waits_for_it(
    ctx: Context,
    actors: dict[Role, Actor],
    emulator: EmulatorHandle,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two workers refresh at once: the loser's refresh is refused (its refresh token was
    just rotated by the winner) before the winner commits. It must wait for the rotated
    tokens, not mark a connection with valid stored tokens as needing sign-in."""
    admin, _, commit = _two_workers(ctx, actors, emulator, monkeypatch)
    with ctx.db.session() as session:
        row = session.query(Connection).filter_by(name="Snap").one()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 2:
            commit()  # the winner's commit lands during the loser's second pause

    worker_b = open_destination(ctx, row, sleep=sleep)
    try:
        worker_b.check_connection()
    finally:
        worker_b.close()
    assert slept == list(destinations.REFUSED_REFRESH_WAITS[:2])
    assert connections.get_connection(ctx, admin, "Snap").status == "active"
    _use(ctx, "Snap")  # and the tokens stored now work for the next command
    assert connections.get_connection(ctx, admin, "Snap").status == "active"


def test_a_refused_refresh_with_no_newer_token_stored_marks_the_connection_after_the_wait(
    ctx: Context,
    actors: dict[Role, Actor],
    emulator: EmulatorHandle,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin, _, _ = _two_workers(ctx, actors, emulator, monkeypatch)  # A never commits
    with ctx.db.session() as session:
        row = session.query(Connection).filter_by(name="Snap").one()
    slept: list[float] = []
    worker_b = open_destination(ctx, row, sleep=slept.append)
    try:
        with pytest.raises(ReauthenticationRequiredError):
            worker_b.check_connection()
    finally:
        worker_b.close()
    assert slept == list(destinations.REFUSED_REFRESH_WAITS)  # bounded: 3.75 s in all
    assert connections.get_connection(ctx, admin, "Snap").status == "needs_reauth"
