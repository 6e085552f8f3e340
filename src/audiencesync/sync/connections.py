"""Connections to Snapchat: OAuth, consent, who may use them, tokens encrypted at rest.

Seed steps (Admin > Connections > Add connection > Snapchat): display name, who can use
it (administrators only by default), "I agree" to the data-privacy text, authenticate with
Snapchat, add yourself as export user, save. Every interface calls these functions, so the
permission checks live here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from audiencesync.control import audit
from audiencesync.control.context import Context
from audiencesync.control.models import Role, utcnow
from audiencesync.control.permissions import Action, Actor, require
from audiencesync.control.sync_models import Connection, Export
from audiencesync.destinations.base import AccountInfo
from audiencesync.destinations.snapchat.oauth import (
    OAuthApp,
    TokenSet,
    authorize_url,
    exchange_code,
    new_state,
)
from audiencesync.errors import (
    ConflictError,
    Fix,
    NotFoundError,
    PermissionDeniedError,
    UserInputError,
)
from audiencesync.sync.consent import CONSENT_VERSION
from audiencesync.sync.destinations import ACTIVE, check_tokens, delete_tokens, save_tokens

log = logging.getLogger(__name__)

SNAPCHAT = "snapchat"


@dataclass(frozen=True)
class AdAccountView:
    id: str
    name: str
    organization_id: str


@dataclass(frozen=True)
class ConnectionView:
    """A connection as the acting user may see it; ``full`` is False for non-admins.

    Contributors and viewers see the display name and type only; administrators see all
    fields but secrets (tokens never leave the encrypted store).
    """

    name: str
    type: str
    full: bool
    shared_with_contributors: bool | None = None
    status: str | None = None
    export_user: str | None = None
    consent_by: str | None = None
    consent_at: datetime | None = None
    consent_version: str | None = None
    platform_user_name: str | None = None
    organization_ids: tuple[str, ...] = ()
    ad_accounts: tuple[AdAccountView, ...] = ()
    created_by: str | None = None
    created_at: datetime | None = None
    authenticated_at: datetime | None = None
    exports: tuple[str, ...] = ()


@dataclass(frozen=True)
class Authorization:
    """A started OAuth login: send the user to ``url``; the redirect must bring ``state``."""

    state: str
    url: str
    redirect_uri: str


def may_use(actor: Actor, connection: Connection) -> bool:
    """Whether ``actor`` may create, edit or run exports on ``connection``."""
    if actor.role is Role.ADMIN:
        return True
    return actor.role is Role.CONTRIBUTOR and connection.shared_with_contributors


def visible(actor: Actor, connection: Connection) -> bool:
    """Whether ``actor`` may know ``connection`` exists (contributors: shared ones only)."""
    if actor.role is Role.CONTRIBUTOR:
        return connection.shared_with_contributors
    return True


def _view(session: Session, actor: Actor, row: Connection) -> ConnectionView:
    if actor.role is not Role.ADMIN:
        return ConnectionView(name=row.name, type=row.type, full=False)
    exports = session.scalars(
        select(Export.name).where(Export.connection_id == row.id).order_by(Export.name)
    )
    return ConnectionView(
        name=row.name,
        type=row.type,
        full=True,
        shared_with_contributors=row.shared_with_contributors,
        status=row.status,
        export_user=row.export_user,
        consent_by=row.consent_by,
        consent_at=row.consent_at,
        consent_version=row.consent_version,
        platform_user_name=row.platform_user_name,
        organization_ids=tuple(row.organization_ids),
        ad_accounts=tuple(AdAccountView(**a) for a in row.ad_accounts),
        created_by=row.created_by,
        created_at=row.created_at,
        authenticated_at=row.authenticated_at,
        exports=tuple(exports),
    )


def _check_name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned or len(cleaned) > 100 or any(ch in cleaned for ch in "\n\r\t"):
        raise UserInputError(
            "a connection's display name must be 1 to 100 characters on one line: "
            "choose one that says what the connection is for.",
            field="name",
        )
    return cleaned


def check_new_name(ctx: Context, actor: Actor, name: str) -> str:
    """A new connection's display name, checked valid and free before the sign-in starts.

    Checked again at save (someone may take the name meanwhile).
    """
    require(actor, Action.MANAGE_CONNECTIONS)
    display = _check_name(name)
    with ctx.db.session() as session:
        if session.scalar(select(Connection.id).where(Connection.name == display)) is not None:
            raise ConflictError(
                f"a connection named {display!r} already exists: choose another.", field="name"
            )
    return display


def reached_account(ctx: Context, actor: Actor, tokens: TokenSet) -> tuple[AccountInfo, TokenSet]:
    """What fresh tokens reach (user, organizations, ad accounts), before saving them.

    Also the tokens to keep: a refresh during the check rotates the refresh token.
    """
    require(actor, Action.MANAGE_CONNECTIONS)
    return _checked(ctx, tokens)


def get_row(session: Session, name: str) -> Connection:
    row = session.scalar(select(Connection).where(Connection.name == name))
    if row is None:
        raise NotFoundError(
            f"there is no connection named {name!r}.", fix=Fix("list", "connections")
        )
    return row


def start_authorization(
    ctx: Context, actor: Actor, redirect_uri: str | None = None
) -> Authorization:
    """Begin "Authenticate with Snapchat": a fresh ``state`` and the authorize URL."""
    require(actor, Action.MANAGE_CONNECTIONS)
    app = OAuthApp.from_settings(ctx.settings)
    if redirect_uri is not None:
        app = OAuthApp(app.client_id, app.client_secret, redirect_uri, app.auth_base_url)
    state = new_state()
    return Authorization(state=state, url=authorize_url(app, state), redirect_uri=app.redirect_uri)


def finish_authorization(
    ctx: Context, actor: Actor, authorization: Authorization, *, code: str, state: str
) -> TokenSet:
    """Check the redirect's ``state`` and exchange its ``code`` for tokens."""
    require(actor, Action.MANAGE_CONNECTIONS)
    if not state or state != authorization.state:
        raise PermissionDeniedError(
            "the Snapchat sign-in came back with a different state than it was started with: "
            "start the authentication again (this can mean a forged or stale link)."
        )
    if not code:
        raise UserInputError("Snapchat did not return an authorization code: sign in again.")
    app = OAuthApp.from_settings(ctx.settings)
    app = OAuthApp(app.client_id, app.client_secret, authorization.redirect_uri, app.auth_base_url)
    return exchange_code(app, code)


def _account_fields(row: Connection, account: AccountInfo) -> None:
    row.platform_user_id = account.user_id
    row.platform_user_name = account.user_display_name
    row.organization_ids = list(account.organization_ids)
    row.ad_accounts = [
        {"id": a.id, "name": a.name, "organization_id": a.organization_id}
        for a in account.ad_accounts
    ]


def create_snapchat_connection(
    ctx: Context,
    actor: Actor,
    name: str,
    *,
    share_with_contributors: bool,
    agreed: bool,
    tokens: TokenSet,
) -> ConnectionView:
    """Save a Snapchat connection: consent, the reached account, tokens encrypted.

    The acting administrator is recorded as the consenting user and the export user.
    """
    require(actor, Action.MANAGE_CONNECTIONS)
    check_consent(agreed)
    display = _check_name(name)
    account, tokens = _checked(ctx, tokens)
    with ctx.db.session() as session:
        if session.scalar(select(Connection).where(Connection.name == display)) is not None:
            raise ConflictError(
                f"a connection named {display!r} already exists: choose another.", field="name"
            )
        now = utcnow()
        row = Connection(
            name=display,
            type=SNAPCHAT,
            shared_with_contributors=share_with_contributors,
            status=ACTIVE,
            consent_by=actor.name,
            consent_at=now,
            consent_version=CONSENT_VERSION,
            export_user=actor.name,
            created_by=actor.name,
            created_at=now,
            authenticated_at=now,
        )
        _account_fields(row, account)
        session.add(row)
        session.flush()
        save_tokens(session, ctx, row.id, tokens)
        audit.record(
            session, actor, "connection.create", f"connection:{display}",
            after={
                "type": SNAPCHAT,
                "shared_with_contributors": share_with_contributors,
                "consent_version": CONSENT_VERSION,
                "export_user": actor.name,
                "ad_accounts": [a["id"] for a in row.ad_accounts],
            },
        )  # fmt: skip
        return _view(session, actor, row)


def _checked(ctx: Context, tokens: TokenSet) -> tuple[AccountInfo, TokenSet]:
    """The account fresh tokens reach, and the tokens to save: the last set the checks
    were given (a refresh during the checks rotates the refresh token)."""
    latest: list[TokenSet] = [tokens]
    account = check_tokens(ctx, tokens, latest.append)
    return account, latest[-1]


def check_consent(agreed: bool) -> None:
    """No consent, no connection."""
    if not agreed:
        raise UserInputError(
            "a connection needs your agreement to the data privacy and compliance text: "
            "read it, then agree to it.",
            field="agree",
        )


def reauthenticate(ctx: Context, actor: Actor, name: str, tokens: TokenSet) -> ConnectionView:
    """Replace a connection's tokens after a new sign-in; clears "needs re-authentication"."""
    require(actor, Action.MANAGE_CONNECTIONS)
    account, tokens = _checked(ctx, tokens)
    with ctx.db.session() as session:
        row = get_row(session, name)
        before = {"status": row.status, "platform_user": row.platform_user_name}
        _account_fields(row, account)
        row.status = ACTIVE
        row.last_error = None
        row.authenticated_at = utcnow()
        save_tokens(session, ctx, row.id, tokens)
        audit.record(
            session, actor, "connection.reauth", f"connection:{row.name}",
            before=before, after={"status": ACTIVE, "platform_user": row.platform_user_name},
        )  # fmt: skip
        return _view(session, actor, row)


def set_access(
    ctx: Context, actor: Actor, name: str, *, share_with_contributors: bool
) -> ConnectionView:
    """Choose who can use the connection; existing exports keep working either way."""
    require(actor, Action.MANAGE_CONNECTIONS)
    with ctx.db.session() as session:
        row = get_row(session, name)
        before = row.shared_with_contributors
        row.shared_with_contributors = share_with_contributors
        audit.record(
            session, actor, "connection.set_access", f"connection:{row.name}",
            before={"shared_with_contributors": before},
            after={"shared_with_contributors": share_with_contributors},
        )  # fmt: skip
        return _view(session, actor, row)


def remove_connection(ctx: Context, actor: Actor, name: str, *, detach: bool = False) -> list[str]:
    """Remove a connection and its tokens; returns the exports detached.

    Refused while exports use it, unless ``detach``: detached exports keep their
    configuration and become inactive until given a connection again.
    """
    require(actor, Action.MANAGE_CONNECTIONS)
    with ctx.db.session() as session:
        row = get_row(session, name)
        exports = list(session.scalars(select(Export).where(Export.connection_id == row.id)))
        names = sorted(e.name for e in exports)
        if exports and not detach:
            raise ConflictError(
                f"connection {row.name!r} is used by export(s) {', '.join(names)}: remove them",
                fix=Fix("detach"),
            )
        for export in exports:
            export.connection_id = None
            export.enabled = False
        delete_tokens(session, row.id)
        audit.record(
            session, actor, "connection.remove", f"connection:{row.name}",
            before={"type": row.type, "exports": names}, after={"detached": names},
        )  # fmt: skip
        session.delete(row)
    return names


def list_connections(ctx: Context, actor: Actor) -> list[ConnectionView]:
    """Connections the actor may see (contributors: only those shared with them)."""
    require(actor, Action.READ)
    with ctx.db.session() as session:
        rows = session.scalars(select(Connection).order_by(Connection.name))
        return [_view(session, actor, r) for r in rows if visible(actor, r)]


def get_connection(ctx: Context, actor: Actor, name: str) -> ConnectionView:
    require(actor, Action.READ)
    with ctx.db.session() as session:
        row = get_row(session, name)
        if not visible(actor, row):
            raise NotFoundError(
                f"there is no connection named {name!r}.", fix=Fix("list", "connections")
            )
        return _view(session, actor, row)
