"""Answers in the shapes Snapchat uses: the envelope, the error body, RFC 6749 errors."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import PlainTextResponse, Response

from audiencesync.emulator.store import OAuthError, SnapError


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def new_request_id() -> str:
    return uuid.uuid4().hex


def envelope(plural: str, singular: str, entities: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"request_status": "SUCCESS", ..., plural: [{"sub_request_status", singular}]}``."""
    return {
        "request_status": "SUCCESS",
        "request_id": new_request_id(),
        plural: [{"sub_request_status": "SUCCESS", singular: entity} for entity in entities],
    }


def snap_error(
    status: int,
    message: str,
    code: str,
    *,
    display_message: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Snap's error body: request_status ERROR, request_id, messages and error_code."""
    body = {
        "request_status": "ERROR",
        "request_id": new_request_id(),
        "debug_message": message,
        "display_message": display_message or message,
        "error_code": code,
    }
    return json_response(body, status, headers)


def snap_error_from(error: SnapError) -> Response:
    return snap_error(error.status, error.message, error.code)


def unauthorized() -> Response:
    # Snap has been seen answering 401 in plain text; clients must not read the body.
    return PlainTextResponse(
        "Unauthorized", 401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )


def oauth_error(error: OAuthError) -> Response:
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="snapchat-emulator"'
    body = {"error": error.error, "error_description": error.description}
    return json_response(body, error.status, headers)
