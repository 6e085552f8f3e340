"""The ``/api/v1`` router: every resource's routes."""

from __future__ import annotations

from fastapi import APIRouter

from audiencesync.api.routes import (
    audit,
    connections,
    datasets,
    exports,
    me,
    runs,
    schedule,
    segments,
    users,
)

PREFIX = "/api/v1"


def api_router() -> APIRouter:
    """All API routes under ``/api/v1``."""
    router = APIRouter(prefix=PREFIX)
    for module in (me, users, datasets, segments, connections, exports, runs, schedule, audit):
        router.include_router(module.router)
    return router
