"""Sign in (throttled) and sign out; the session cookie's settings."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from audiencesync.api import auth
from audiencesync.api.deps import (
    SESSION_COOKIE,
    client_address,
    find_principal,
    get_context,
    same_secret,
)
from audiencesync.errors import AudiencesyncError, PermissionDeniedError
from audiencesync.web.common import Form, FormError, redirect, same_origin, templates
from audiencesync.wording import for_web

router = APIRouter()
LOGIN_CSRF_COOKIE = "audiencesync_login_csrf"


def secure(request: Request) -> bool:
    """Cookies are Secure when the browser talks HTTPS (directly or through a proxy)."""
    return request.url.scheme == "https"


def set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    response.set_cookie(
        name, value, httponly=True, samesite="lax", secure=secure(request), path="/"
    )


def safe_next(target: str | None) -> str:
    """Only a path on this site: never another site after signing in."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def _login_page(
    request: Request, *, error: FormError = None, status: int = 200, name: str = ""
) -> HTMLResponse:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = templates.TemplateResponse(
        request,
        "login.html",
        {
            "login_csrf": token,
            "next": safe_next(request.query_params.get("next")),
            "error": for_web(error) if isinstance(error, AudiencesyncError) else error,
            "name": name,
        },
        status_code=status,
    )
    set_cookie(request, response, LOGIN_CSRF_COOKIE, token)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    if find_principal(request) is not None:
        return redirect(safe_next(request.query_params.get("next")))
    return _login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
    sent, expected = str(form.get("csrf_token", "")), request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not same_secret(sent, expected) or not same_origin(request):
        return _login_page(
            request, error="the sign-in form expired: try again.", status=400, name=name
        )
    ctx = get_context(request)
    address = client_address(request)
    try:
        actor = await run_in_threadpool(auth.sign_in, ctx, name, password, address=address)
    except PermissionDeniedError as error:
        return _login_page(request, error=error, status=error.http_status, name=name)
    cookie, _ = await run_in_threadpool(auth.start_session, ctx, actor)
    response = redirect(safe_next(str(form.get("next", "/"))))
    set_cookie(request, response, SESSION_COOKIE, cookie)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout")
def logout(request: Request, page: Form) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        auth.end_session(page.ctx, cookie)
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/")
def home(request: Request) -> Response:
    return redirect("/exports" if find_principal(request) else "/login")
