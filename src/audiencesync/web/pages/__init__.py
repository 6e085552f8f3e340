"""The pages of the web UI, one module per area; ``router`` holds them all."""

from __future__ import annotations

from fastapi import APIRouter

from audiencesync.web.pages import (
    account,
    admin,
    alerts,
    privacy,
    profiles,
    segments,
    signin,
    sources,
    unifications,
)
from audiencesync.web.pages import connections as connection_pages
from audiencesync.web.pages import exports as export_pages

router = APIRouter(include_in_schema=False)
for _module in (
    signin,
    account,
    admin,
    alerts,
    privacy,
    sources,
    unifications,
    profiles,
    segments,
    connection_pages,
    export_pages,
):
    router.include_router(_module.router)
