"""OAuth 2 authorization code flow: the authorize page and the token endpoint."""

from __future__ import annotations

import base64
import binascii
import html
import secrets
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, RedirectResponse, Response

from audiencesync.emulator.responses import json_response, oauth_error
from audiencesync.emulator.store import SCOPE, OAuthError

if TYPE_CHECKING:
    from audiencesync.emulator.app import Call, Emulator

AUTHORIZE_PATH = "/login/oauth2/authorize"
TOKEN_PATH = "/login/oauth2/access_token"  # noqa: S105 (a path)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def redirect_allowed(emulator: Emulator, redirect_uri: str) -> bool:
    """Whether ``redirect_uri`` equals a registered one, or is a loopback URI on any port
    when loopback redirects are allowed (RFC 8252 section 7.3)."""
    config = emulator.config
    if redirect_uri in config.redirect_uris:
        return True
    if not config.allow_loopback_redirects:
        return False
    try:
        parts = urlsplit(redirect_uri)
        _ = parts.port  # raises ValueError for a bad port
    except ValueError:
        return False
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS and not parts.fragment


def _with_query(uri: str, values: dict[str, str]) -> str:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(values.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _error_page(message: str) -> Response:
    body = (
        "<!doctype html><html><head><title>Authorization error</title></head><body>"
        f"<h1>Authorization error</h1><p>{html.escape(message)}</p></body></html>"
    )
    return HTMLResponse(body, 400)


class _AuthorizeRequest:
    """The parameters of an authorize request, checked; ``problem`` is an answer when the
    request cannot go on (an error page, or a redirect carrying the error)."""

    def __init__(self, emulator: Emulator, params: dict[str, str], redirect_status: int) -> None:
        self.client_id = params.get("client_id", "")
        self.redirect_uri = params.get("redirect_uri", "")
        self.response_type = params.get("response_type", "")
        self.scope = params.get("scope", "")
        self.state = params.get("state")
        self.redirect_status = redirect_status
        self.problem: Response | None = None
        # Without a known client and redirect URI nothing may be redirected (RFC 6749 4.1.2.1).
        if self.client_id != emulator.config.client_id:
            self.problem = _error_page(f"Unknown client_id {self.client_id!r}.")
        elif not redirect_allowed(emulator, self.redirect_uri):
            self.problem = _error_page(
                f"redirect_uri {self.redirect_uri!r} is not registered for this app."
            )
        elif self.response_type != "code":
            self.problem = self.redirect(
                {"error": "unsupported_response_type", "error_description": "use code"}
            )
        elif SCOPE not in self.scope.split():
            self.problem = self.redirect(
                {"error": "invalid_scope", "error_description": f"scope must include {SCOPE}"}
            )

    def redirect(self, values: dict[str, str]) -> Response:
        if self.state is not None:
            values = {**values, "state": self.state}
        return RedirectResponse(_with_query(self.redirect_uri, values), self.redirect_status)

    def approve(self, emulator: Emulator) -> Response:
        code = emulator.store.issue_code(self.client_id, self.redirect_uri, self.scope)
        return self.redirect({"code": code})


async def authorize_page(emulator: Emulator, call: Call) -> Response:
    """GET authorize: the approval page, or (auto-approve) a redirect with a code."""
    request = _AuthorizeRequest(emulator, dict(call.request.query_params), 302)
    if request.problem is not None:
        return request.problem
    if emulator.config.auto_approve:
        return request.approve(emulator)
    user = emulator.store.user
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{html.escape(value)}">'
        for name, value in (
            ("client_id", request.client_id),
            ("redirect_uri", request.redirect_uri),
            ("response_type", request.response_type),
            ("scope", request.scope),
            *((("state", request.state),) if request.state is not None else ()),
        )
    )
    body = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Snapchat (emulator): authorize</title>
<style>body{{font-family:sans-serif;max-width:32rem;margin:4rem auto}}
button{{font-size:1rem;padding:.5rem 1.5rem;margin-right:1rem}}</style></head>
<body>
<h1>Authorize {html.escape(request.client_id)}</h1>
<p>Signed in as <strong>{html.escape(user.display_name)}</strong> ({html.escape(user.email)}).</p>
<p>The app asks for: <code>{html.escape(request.scope)}</code>
(manage your ads and customer lists).</p>
<p>It will be sent back to <code>{html.escape(request.redirect_uri)}</code>.</p>
<form method="post" action="{AUTHORIZE_PATH}">{hidden}
<button type="submit" name="decision" value="approve" id="approve">Approve</button>
<button type="submit" name="decision" value="deny" id="deny">Deny</button>
</form>
<p><small>This is the local audiencesync Snapchat emulator, not Snapchat.</small></p>
</body></html>"""
    return HTMLResponse(body)


async def approve_form(emulator: Emulator, call: Call) -> Response:
    """POST authorize (the page's form): redirect with a code, or access_denied."""
    params = dict(parse_qsl((await call.request.body()).decode("utf-8", "replace")))
    request = _AuthorizeRequest(emulator, params, 303)
    if request.problem is not None:
        return request.problem
    if params.get("decision") != "approve":
        return request.redirect(
            {"error": "access_denied", "error_description": "the user denied access"}
        )
    return request.approve(emulator)


async def token(emulator: Emulator, call: Call) -> Response:
    """POST access_token: code exchange and refresh, answered as RFC 6749."""
    try:
        return _issue(emulator, call.request.headers, await call.request.body())
    except OAuthError as error:
        return oauth_error(error)


def _issue(emulator: Emulator, headers: Headers, body: bytes) -> Response:
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "the body must be application/x-www-form-urlencoded")
    pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    names = [name for name, _ in pairs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise OAuthError("invalid_request", f"parameter(s) given twice: {', '.join(repeated)}")
    form = dict(pairs)
    client_id, client_secret = _client_credentials(headers, form)
    config = emulator.config
    if client_id != config.client_id or not secrets.compare_digest(
        client_secret.encode(), config.client_secret.encode()
    ):
        raise OAuthError("invalid_client", "unknown client or wrong client secret", 401)
    grant_type = form.get("grant_type", "")
    if grant_type == "authorization_code":
        code, redirect_uri = form.get("code"), form.get("redirect_uri")
        if not code or not redirect_uri:
            raise OAuthError("invalid_request", "code and redirect_uri are required")
        pair = emulator.store.exchange_code(code, client_id, redirect_uri, config.token_ttl)
    elif grant_type == "refresh_token":
        refresh_token = form.get("refresh_token")
        if not refresh_token:
            raise OAuthError("invalid_request", "refresh_token is required")
        pair = emulator.store.refresh(refresh_token, client_id, config.token_ttl)
    else:
        raise OAuthError(
            "unsupported_grant_type", "grant_type must be authorization_code or refresh_token"
        )
    body_json = {
        "access_token": pair.access_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "refresh_token": pair.refresh_token,
        "scope": pair.scope,
    }
    return json_response(body_json, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _client_credentials(headers: Headers, form: dict[str, str]) -> tuple[str, str]:
    """client_id and client_secret from the body, or from HTTP Basic (RFC 6749 2.3.1)."""
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "malformed Basic credentials", 401) from None
        user, _, password = decoded.partition(":")
        return user, password
    return form.get("client_id", ""), form.get("client_secret", "")
