"""The app ``audiencesync serve`` runs: the web UI, the REST API and its docs."""

from __future__ import annotations

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
from audiencesync.api.deps import get_context
from audiencesync.api.router import PREFIX, api_router
from audiencesync.control.context import Context
from audiencesync.errors import AudiencesyncError
from audiencesync.settings import Settings, load_settings
from audiencesync.web.common import HERE, LoginRequiredError, Page, templates
from audiencesync.web.pages import router as pages_router

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
        if back is not None:
            # A button on a page failed: show why on that page, in plain words.
            page = Page(get_context(request), request.state.principal)
            await run_in_threadpool(page.flash, error.message, kind="error")
            return RedirectResponse(back, status_code=303)
        return _error_page(request, error.http_status, error.message)

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
    Raises NotSetUpError when the home was never initialised.
    """
    settings = settings or load_settings()
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
    app.add_middleware(SecurityHeaders, auth_origin=auth_origin)
    return app
