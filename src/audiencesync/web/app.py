"""The app ``audiencesync serve`` runs: the web UI, the REST API and its docs."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audiencesync import __version__
from audiencesync.api import errors
from audiencesync.api.auth import parse_trusted_proxies
from audiencesync.api.deps import SESSION_COOKIE, get_context
from audiencesync.api.router import PREFIX, api_router, openapi_document
from audiencesync.bounds import (
    MAX_NESTING,
    encodes_surrogate,
    json_holds_surrogate,
    nesting_depth,
)
from audiencesync.control.context import Context
from audiencesync.errors import AudiencesyncError, DatabaseUnavailableError
from audiencesync.settings import Settings, load_settings
from audiencesync.web.common import HERE, LoginRequiredError, Page, templates
from audiencesync.web.pages import router as pages_router
from audiencesync.wording import for_web

PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self' {auth}; frame-ancestors 'none'"
)
# Swagger UI sets inline styles; its page gets them, and nothing else does.
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; object-src 'none'; frame-ancestors 'none'"
)


class SecurityHeaders:
    """Adds the headers every answer carries: CSP, no framing, no sniffing, no caching."""

    def __init__(self, app: ASGIApp, *, auth_origin: str) -> None:
        self.app = app
        self.page_csp = PAGE_CSP.format(auth=auth_origin).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                csp = DOCS_CSP.encode() if path == "/api/docs" else self.page_csp
                headers += [
                    (b"content-security-policy", csp),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                ]
                if not path.startswith("/static/"):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class BodyTooLargeError(AudiencesyncError):
    """A request body over its cap (AUDIENCESYNC_MAX_REQUEST_BYTES / MAX_UPLOAD_BYTES)."""

    http_status = 413


def _too_large(cap: int, upload: bool) -> str:
    setting = "AUDIENCESYNC_MAX_UPLOAD_BYTES" if upload else "AUDIENCESYNC_MAX_REQUEST_BYTES"
    return (
        f"the request body is larger than {cap:,} bytes, the most this server reads "
        f"({setting}): send less, or ask the administrator to raise it."
    )


class BodyLimit:
    """Caps request bodies, and how deep a JSON body nests, before any parser runs.

    JSON and form bodies are read whole (at most ``max_bytes``) and measured; uploads
    (multipart) stream through, counted against ``max_upload_bytes``.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _holds_nul(scope):
            # No name, value or rule holds a NUL; PostgreSQL refuses one in any text (a
            # 500 before: schemathesis found it in paths and query strings).
            await _refuse(scope, receive, send, 400, NUL_DETAIL)
            return
        if scope["type"] == "http" and encodes_surrogate(scope.get("query_string", b"")):
            await _refuse(scope, receive, send, 400, SURROGATE_DETAIL)
            return
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        raw: list[tuple[bytes, bytes]] = list(scope.get("headers", []))
        # The first of each header, as Starlette's parsers read them (dict() kept the last).
        headers: dict[bytes, bytes] = {}
        for key, value in raw:
            headers.setdefault(key.lower(), value)
        for once in (b"content-type", b"content-length"):
            if sum(1 for key, _ in raw if key.lower() == once) > 1:
                detail = (
                    f"the request has several {once.decode()} headers: send one, so the "
                    "server reads the body the way it was sent."
                )
                await _refuse(scope, receive, send, 400, detail)
                return
        content_type = headers.get(b"content-type", b"").lower()
        upload = content_type.startswith(b"multipart/form-data")
        if upload and not _has_credentials(headers):
            # An upload is read (and stored) before the route checks who sent it: without
            # a token or a session cookie, refuse it before reading a byte.
            detail = (
                "sign in first: uploads need a session or an API token (Authorization: Bearer ...)."
            )
            await _refuse(scope, receive, send, 401, detail, {"WWW-Authenticate": "Bearer"})
            return
        cap = self.max_upload_bytes if upload else self.max_bytes
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > cap:
            await _refuse(scope, receive, send, 413, _too_large(cap, upload))
            return
        if upload:
            await self.app(scope, _counting(receive, cap), send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
            if len(body) > cap:
                await _refuse(scope, receive, send, 413, _too_large(cap, upload))
                return
        if b"json" in content_type and _JSON_NUL.search(body):
            await _refuse(scope, receive, send, 400, NUL_DETAIL)
            return
        if b"json" in content_type and nesting_depth(bytes(body)) > MAX_NESTING:
            detail = (
                f"the request body nests deeper than {MAX_NESTING} levels: no request of "
                "this API needs that; flatten it."
            )
            await _refuse(scope, receive, send, 400, detail)
            return
        # A lone surrogate (JSON "\ud800") reached the database before: PostgreSQL and the
        # pages cannot encode it, and every list showing the row answered 500.
        if (b"json" in content_type and json_holds_surrogate(bytes(body))) or (
            b"form" in content_type and encodes_surrogate(bytes(body))
        ):
            await _refuse(scope, receive, send, 400, SURROGATE_DETAIL)
            return
        await self.app(scope, _replay(bytes(body), receive), send)


NUL_DETAIL = (
    "the request holds a NUL character (\\u0000 or %00): no name, value or rule may hold "
    "one; remove it."
)
SURROGATE_DETAIL = (
    "the request holds a lone UTF-16 surrogate (\\ud800 to \\udfff), half of a character: "
    "no name, value or rule may hold one; send whole characters."
)
#: ``\u0000`` in JSON text, unless its backslash is itself escaped (``\\u0000``).
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000", re.IGNORECASE)


def _holds_nul(scope: Scope) -> bool:
    query: bytes = scope.get("query_string", b"")
    return "\x00" in scope["path"] or b"%00" in query or b"\x00" in query


def _has_credentials(headers: dict[bytes, bytes]) -> bool:
    if headers.get(b"authorization", b"").strip():
        return True
    cookies = headers.get(b"cookie", b"").decode("latin-1")
    return any(part.strip().startswith(f"{SESSION_COOKIE}=") for part in cookies.split(";"))


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
) -> None:
    await errors.json_error(status, detail, headers)(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _counting(receive: Receive, cap: int) -> Receive:
    total = 0

    async def counted() -> Message:
        nonlocal total
        message = await receive()
        if message["type"] == "http.request":
            total += len(message.get("body", b""))
            if total > cap:
                raise BodyTooLargeError(_too_large(cap, True))
        return message

    return counted


def _back_to(request: Request) -> str | None:
    """The page a failed form was posted from, when it is on this site and signed in."""
    if request.method != "POST" or request.headers.get("hx-request"):
        return None
    principal = getattr(request.state, "principal", None)
    referer = urlsplit(request.headers.get("referer", ""))
    if principal is None or principal.session is None or not referer.path.startswith("/"):
        return None
    if referer.netloc != request.headers.get("host", request.url.netloc):
        return None
    return referer.path + (f"?{referer.query}" if referer.query else "")


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error_page(request: Request, status: int, message: str) -> Response:
    if request.headers.get("hx-request"):
        return HTMLResponse(f'<p class="error" role="alert">{_escape(message)}</p>', status)
    return templates.TemplateResponse(
        request, "error.html", {"status": status, "message": message}, status_code=status
    )


def _escape(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))


def _install_error_handlers(app: FastAPI) -> None:
    async def service_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, AudiencesyncError)
        if _is_api(request):
            return errors.from_service(error)
        back = _back_to(request)
        if back is not None and not isinstance(error, DatabaseUnavailableError):
            # A button on a page failed: show why on that page, in plain words.
            page = Page(get_context(request), request.state.principal)
            await run_in_threadpool(page.flash, for_web(error), kind="error")
            return RedirectResponse(back, status_code=303)
        if isinstance(error, DatabaseUnavailableError):
            errors.log_unavailable(error)
        return _error_page(request, error.http_status, for_web(error))

    async def validation_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        if _is_api(request):
            return errors.from_validation(error)
        return _error_page(request, 422, errors.validation_detail(error.errors()))

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        if _is_api(request):
            return errors.from_http(error)
        message = "there is no such page." if error.status_code == 404 else str(error.detail)
        return _error_page(request, error.status_code, message)

    async def login_required(request: Request, error: Exception) -> Response:
        assert isinstance(error, LoginRequiredError)
        target = "/login?next=" + _quote(error.next_url)
        if request.headers.get("hx-request"):
            return Response(status_code=204, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    async def unexpected(request: Request, error: Exception) -> Response:
        response = errors.unexpected(error)
        if _is_api(request):
            return response
        if isinstance(error, AudiencesyncError):
            return _error_page(request, error.http_status, for_web(error))
        return _error_page(request, 500, errors.UNEXPECTED)

    app.add_exception_handler(AudiencesyncError, service_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(LoginRequiredError, login_required)
    app.add_exception_handler(Exception, unexpected)


def _quote(url: str) -> str:
    from urllib.parse import quote

    return quote(url, safe="/")


def create_app(settings: Settings | None = None, *, context: Context | None = None) -> FastAPI:
    """The web UI and REST API over the home of ``settings`` (opened and migrated here).

    ``context`` reuses an opened home (tests); the app then leaves closing it to the caller.
    Raises NotSetUpError when the home was never initialised, UserInputError when
    AUDIENCESYNC_TRUSTED_PROXIES is not a list of addresses.
    """
    settings = settings or load_settings()
    parse_trusted_proxies(settings.trusted_proxies)  # refused at start, not at each sign-in
    ctx = context or Context.open(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if context is None:
            ctx.close()

    app = FastAPI(
        title="audiencesync",
        version=__version__,
        summary="Keep Snapchat customer-list audiences in step with your own segments.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    app.include_router(api_router())
    app.include_router(pages_router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/api/docs", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return HTMLResponse(
            "<!doctype html><html><head><meta charset='utf-8'><title>audiencesync API</title>"
            "<link rel='icon' href='/static/favicon.svg' type='image/svg+xml'>"
            "<link rel='stylesheet' href='/static/swagger/swagger-ui.css'></head><body>"
            "<div id='swagger-ui'></div>"
            "<script src='/static/swagger/swagger-ui-bundle.js'></script>"
            "<script src='/static/swagger/init.js'></script></body></html>"
        )

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> RedirectResponse:
        return RedirectResponse("/static/favicon.svg", status_code=301)

    @app.get(PREFIX, include_in_schema=False)
    def api_root() -> RedirectResponse:
        return RedirectResponse("/api/docs")

    _install_error_handlers(app)
    auth_origin = settings.snapchat_auth_url.rstrip("/")
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_request_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    app.add_middleware(SecurityHeaders, auth_origin=auth_origin)
    return app
