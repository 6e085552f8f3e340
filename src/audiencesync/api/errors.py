"""Errors as JSON: ``{"detail": "one plain sentence"}`` with the error's HTTP status."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from audiencesync.api.auth import NotSignedInError
from audiencesync.errors import ActiveRunError, AudiencesyncError, DatabaseUnavailableError
from audiencesync.wording import fix_data, for_web

log = logging.getLogger(__name__)

#: what a 503 for an unreachable control database asks clients to wait.
RETRY_AFTER_SECONDS = 5
UNEXPECTED = "an unexpected error happened on the server: see its log, then retry or report it."


def error_status(error: AudiencesyncError) -> int:
    return error.http_status


def json_error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def log_unavailable(error: DatabaseUnavailableError) -> None:
    """The driver's reason, which the 503 answer leaves out, for the operator's log (the
    URL's password is already out of it)."""
    log.warning("answered 503: %s", error.message)


def from_service(error: AudiencesyncError) -> JSONResponse:
    """A service error as its status and message, with the field at fault and the fix.

    ``detail`` is the sentence in the web's words (fields, pages, buttons: never a
    command-line flag); ``field`` names the body field at fault, ``fix`` the action that
    helps (``{"kind", "target", "words"}``), both only when the error has them.
    """
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, NotSignedInError) else None
    if isinstance(error, DatabaseUnavailableError):
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        log_unavailable(error)
    body: dict[str, Any] = {"detail": for_web(error)}
    if error.field is not None:
        body["field"] = error.field
    if error.fix is not None:
        body["fix"] = fix_data(error.fix)
    if isinstance(error, ActiveRunError):
        # The run already holding the export, so a client can follow it instead.
        body["run"] = error.run_id
    return JSONResponse(body, status_code=error.http_status, headers=headers)


def _where(location: Sequence[Any]) -> str:
    parts = [str(p) for p in location if p not in ("body", "query", "path", "form")]
    return ".".join(parts) or "the request"


def validation_detail(errors: Sequence[Any]) -> str:
    """Pydantic's error list as one sentence: ``field 'name' is required; ...``."""
    problems = []
    for error in errors:
        where = _where(error.get("loc", ()))
        kind = error.get("type", "")
        if kind == "missing":
            problems.append(f"{where!r} is required")
        elif kind == "extra_forbidden":
            problems.append(f"{where!r} is not a field of this request")
        elif kind in ("json_invalid", "model_attributes_type", "dict_type"):
            problems.append("the body must be a JSON object")
        else:
            problems.append(f"{where!r}: {error.get('msg', 'is not valid').lower()}")
    return "the request is not valid: " + "; ".join(problems) + "."


def from_validation(error: RequestValidationError) -> JSONResponse:
    return json_error(422, validation_detail(error.errors()))


def from_http(error: HTTPException) -> JSONResponse:
    detail = error.detail if isinstance(error.detail, str) else str(error.detail)
    if error.status_code == 404 and detail == "Not Found":
        detail = "there is no such API address: see /api/docs."
    if error.status_code == 405:
        detail = "this address does not take that method: see /api/docs."
    return json_error(error.status_code, detail, dict(error.headers or {}))


def unexpected(error: Exception) -> JSONResponse:
    """A 500, except for a service error that escaped the handlers (a middleware's)."""
    if isinstance(error, AudiencesyncError):
        return from_service(error)
    log.error("unexpected error: %s", type(error).__name__, exc_info=error)
    return json_error(500, UNEXPECTED)
