"""The ``/api/v1`` router: every resource's routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi

from audiencesync.api.routes import (
    alerts,
    audit,
    connections,
    datasets,
    exports,
    me,
    privacy,
    runs,
    schedule,
    segments,
    sources,
    unifications,
    users,
)

PREFIX = "/api/v1"


def api_router() -> APIRouter:
    """All API routes under ``/api/v1``."""
    router = APIRouter(prefix=PREFIX)
    for module in (
        me,
        users,
        sources,
        datasets,
        unifications,
        segments,
        connections,
        exports,
        runs,
        schedule,
        alerts,
        audit,
        privacy,
    ):
        router.include_router(module.router)
    return router


#: Error answers every API operation may give: ``{"detail": "one plain sentence"}``.
ERROR_ANSWERS = {
    "400": "the request is not valid (the sentence says what to fix)",
    "401": "not signed in: send a personal API token as a Bearer header",
    "403": "your role does not allow this, or the action is refused",
    "404": "the named thing does not exist",
    "409": "the change conflicts with the current state",
    "413": "the request body is larger than the server reads",
    "422": "a field of the request is missing or of the wrong type",
    "429": "too many failed sign-ins: wait, then retry",
    "502": "Snapchat refused or failed the request",
    "503": "the home is not set up or not reachable, or Snapchat is not configured",
}
ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "properties": {
        "detail": {
            "type": "string",
            "title": "Detail",
            "description": "one sentence: what went wrong and what to do (fields and pages, "
            "never command-line flags)",
        },
        "field": {
            "type": "string",
            "title": "Field",
            "description": "the body field at fault, when there is one (e.g. email_field)",
        },
        "fix": {
            "type": "object",
            "title": "Fix",
            "description": "the action that helps: kind (reauthenticate, cancel_run, list, "
            "create_audience...), target (the named thing), words",
            "properties": {
                "kind": {"type": "string"},
                "target": {"type": ["string", "null"]},
                "words": {"type": ["string", "null"]},
            },
        },
        "run": {"type": "integer", "title": "Run", "description": "409: the active run"},
    },
    "required": ["detail"],
}


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, declaring the error answers the server sends (one model) in
    place of FastAPI's 422 body, which this server never sends."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["Error"] = ERROR_SCHEMA
    reference = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for code, description in ERROR_ANSWERS.items():
                responses[code] = {"description": description, "content": reference}
    app.openapi_schema = document
    return document
