"""``/connections``: Snapchat connections by OAuth, with consent; who may use them.

Adding one from a script: ``POST /connections/authorizations`` gives the authorize URL and
a ``state``; open the URL and approve; Snapchat sends the browser to this API's callback
(or to your own ``redirect_uri``: then pass the ``code`` too); ``POST /connections`` with
the state, the display name and ``agree: true`` saves it, you as its export user.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from audiencesync.api import auth
from audiencesync.api.deps import Ctx, CurrentActor
from audiencesync.api.models import (
    AccessUpdate,
    AudienceChoicePublic,
    AuthorizationPublic,
    AuthorizationStart,
    ConnectionCreate,
    ConnectionPublic,
    ConnectionRemoved,
    Message,
    Reauthenticate,
)
from audiencesync.control.context import Context
from audiencesync.control.permissions import Actor
from audiencesync.destinations.snapchat.oauth import TokenSet
from audiencesync.errors import PermissionDeniedError
from audiencesync.sync import choices, connections
from audiencesync.sync.consent import CONSENT_VERSION, PRIVACY_TEXT

router = APIRouter(prefix="/connections", tags=["connections"])


def _tokens(ctx: Context, actor: Actor, state: str, code: str | None) -> TokenSet:
    if code is not None:
        auth.finish_callback(ctx, code=code, state=state, channel=auth.API, actor=actor)
    return auth.pending_tokens(ctx, actor, state, channel=auth.API)


@router.get("")
def list_connections(ctx: Ctx, actor: CurrentActor) -> list[ConnectionPublic]:
    """Connections you may see: contributors only those shared with them."""
    return [ConnectionPublic.of(v) for v in connections.list_connections(ctx, actor)]


@router.post("/authorizations", status_code=status.HTTP_201_CREATED)
def start_authorization(
    ctx: Ctx, actor: CurrentActor, request: Request, body: AuthorizationStart
) -> AuthorizationPublic:
    """Start "Authenticate with Snapchat" (administrators only)."""
    redirect = body.redirect_uri or str(request.url_for("api_connection_callback"))
    authorization = auth.begin_authorization(ctx, actor, redirect, channel=auth.API)
    return AuthorizationPublic(
        state=authorization.state,
        authorization_url=authorization.url,
        redirect_uri=authorization.redirect_uri,
        privacy_text=PRIVACY_TEXT,
        consent_version=CONSENT_VERSION,
    )


@router.get("/callback", name="api_connection_callback")
def callback(
    ctx: Ctx,
    code: str = "",
    state: str = "",
    error: Annotated[str | None, Query()] = None,
    error_description: Annotated[str | None, Query()] = None,
) -> Message:
    """Where Snapchat sends the browser back: checks the state and keeps the tokens.

    Only for sign-ins started through the API, and only once: one started on the web page
    comes back to that browser's own callback.
    """
    if error:
        if not auth.cancel_unfinished(ctx, state, channel=auth.API) and auth.tokens_ready(
            ctx, state, channel=auth.API
        ):
            raise PermissionDeniedError(
                "this Snapchat sign-in already finished: nothing was changed; save the "
                "connection with its state, or start again."
            )
        raise PermissionDeniedError(
            f"Snapchat did not grant access ({error_description or error}): start again and "
            "approve the access."
        )
    auth.finish_callback(ctx, code=code, state=state, channel=auth.API)
    return Message(detail="signed in to Snapchat: now save the connection with this state.")


@router.post("", status_code=status.HTTP_201_CREATED)
def create(ctx: Ctx, actor: CurrentActor, body: ConnectionCreate) -> ConnectionPublic:
    """Save a connection from a finished sign-in; you are recorded as its export user."""
    connections.check_consent(body.agree)
    tokens = _tokens(ctx, actor, body.state, body.code)
    view = connections.create_snapchat_connection(
        ctx, actor, body.name, share_with_contributors=body.share_with_contributors,
        agreed=body.agree, tokens=tokens,
    )  # fmt: skip
    auth.discard(ctx, body.state, channel=auth.API)
    return ConnectionPublic.of(view)


@router.get("/{name:path}/audiences")
def list_audiences(
    ctx: Ctx,
    actor: CurrentActor,
    name: str,
    search: Annotated[str | None, Query(max_length=200)] = None,
    ad_account_id: Annotated[str | None, Query(max_length=100)] = None,
) -> list[AudienceChoicePublic]:
    """The customer lists of the connection's ad accounts, read from Snapchat now, to
    pick an export's audience from (``search``: part of the name, or the id; at most 200).
    ``used_by`` names the export already filling one: each export needs its own."""
    found = choices.list_audiences(ctx, actor, name, search=search, ad_account_id=ad_account_id)
    return [AudienceChoicePublic.of(a) for a in found]


@router.get("/{name:path}")
def get(ctx: Ctx, actor: CurrentActor, name: str) -> ConnectionPublic:
    return ConnectionPublic.of(connections.get_connection(ctx, actor, name))


@router.post("/{name:path}/reauth")
def reauthenticate(
    ctx: Ctx, actor: CurrentActor, name: str, body: Reauthenticate
) -> ConnectionPublic:
    """Replace the connection's tokens with those of a new sign-in."""
    tokens = _tokens(ctx, actor, body.state, body.code)
    view = connections.reauthenticate(ctx, actor, name, tokens)
    auth.discard(ctx, body.state, channel=auth.API)
    return ConnectionPublic.of(view)


@router.put("/{name:path}/access")
def set_access(ctx: Ctx, actor: CurrentActor, name: str, body: AccessUpdate) -> ConnectionPublic:
    """Administrators only, or administrators and contributors."""
    view = connections.set_access(
        ctx, actor, name, share_with_contributors=body.share_with_contributors
    )
    return ConnectionPublic.of(view)


@router.delete("/{name:path}")
def remove(ctx: Ctx, actor: CurrentActor, name: str, detach: bool = False) -> ConnectionRemoved:
    """Remove a connection; refused while exports use it unless ``detach=true``."""
    detached = connections.remove_connection(ctx, actor, name, detach=detach)
    return ConnectionRemoved(name=name, detached_exports=detached)
