"""``/_emulator/``: inspection and control for tests and demos (no auth, never faulted).

Answers are plain JSON (not Snap's envelope); a bad request gets 400 ``{"error": ...}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from starlette.responses import Response

from audiencesync.emulator.config import Schema
from audiencesync.emulator.responses import json_response
from audiencesync.emulator.store import (
    AD_ACCOUNT_ID,
    OTHER_AD_ACCOUNT_ID,
    SnapError,
    validate_segment_fields,
)

if TYPE_CHECKING:
    from audiencesync.emulator.app import Call, Emulator

PREFIX = "/_emulator"


class ControlError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def control_error(error: ControlError) -> Response:
    return json_response({"error": error.message}, error.status)


async def _object_body(call: Call) -> dict[str, Any]:
    body = await call.request.body()
    if not body.strip():
        return {}
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ControlError("the body is not valid JSON") from None
    if not isinstance(document, dict):
        raise ControlError("the body must be a JSON object")
    return document


def base_url(call: Call) -> str:
    return str(call.request.base_url).rstrip("/")


async def health(emulator: Emulator, call: Call) -> Response:
    return json_response({"status": "ok"})


async def state(emulator: Emulator, call: Call) -> Response:
    """Everything a test or a person needs to point a client at this emulator."""
    store, config = emulator.store, emulator.config
    url = base_url(call)
    segments = []
    for segment in store.iter_segments():
        shown = store.segment_json(segment)
        segments.append(
            {
                key: shown[key]
                for key in (
                    "id",
                    "ad_account_id",
                    "name",
                    "upload_status",
                    "targetable_status",
                    "approximate_number_users",
                )
            }
            | {"members": {str(k): len(v) for k, v in sorted(segment.members.items())}}
        )
    now = store.clock()
    live_access = sum(
        1
        for g in store.access_tokens.values()
        if not g.revoked and g.expires_at is not None and g.expires_at > now
    )
    live_refresh = sum(1 for g in store.refresh_tokens.values() if not g.revoked)
    user = store.user
    body = {
        "base_url": url,
        "api_url": url,
        "auth_url": url,
        "client_id": config.client_id,
        "client_secret": config.client_secret,
        "redirect_uris": list(config.redirect_uris),
        "allow_loopback_redirects": config.allow_loopback_redirects,
        "organization_id": user.organization_id,
        "ad_account_id": AD_ACCOUNT_ID,
        "other_ad_account_id": OTHER_AD_ACCOUNT_ID,
        "user": {"id": user.id, "email": user.email, "display_name": user.display_name},
        "state_path": str(config.state_path) if config.state_path else None,
        "settings": config.runtime_json(),
        "faults": emulator.injector.faults.to_json()
        | {"script_remaining": emulator.injector.remaining_script},
        "tokens": {"access_live": live_access, "refresh_live": live_refresh},
        "segments": segments,
    }
    return json_response(body)


async def reset(emulator: Emulator, call: Call) -> Response:
    """Back to the seed: no segments, no tokens, counts cleared, start-up faults and settings."""
    emulator.reset()
    return json_response({"reset": True})


async def save(emulator: Emulator, call: Call) -> Response:
    path = emulator.save()
    return json_response({"saved": path is not None, "path": str(path) if path else None})


async def get_faults(emulator: Emulator, call: Call) -> Response:
    injector = emulator.injector
    return json_response(
        injector.faults.to_json() | {"script_remaining": injector.remaining_script}
    )


async def set_faults(emulator: Emulator, call: Call) -> Response:
    """Change the given fault fields (the others keep their value); ``{"clear": true}``
    first resets every fault to none."""
    changes = await _object_body(call)
    base = emulator.injector.faults
    if changes.pop("clear", False):
        base = type(base)()
    try:
        faults = base.updated(changes)
    except ValueError as error:
        raise ControlError(str(error)) from None
    emulator.injector.configure(faults)
    return await get_faults(emulator, call)


async def get_settings(emulator: Emulator, call: Call) -> Response:
    return json_response(emulator.config.runtime_json())


async def set_settings(emulator: Emulator, call: Call) -> Response:
    try:
        emulator.configure(emulator.config.updated(await _object_body(call)))
    except ValueError as error:
        raise ControlError(str(error)) from None
    return json_response(emulator.config.runtime_json())


async def requests(emulator: Emulator, call: Call) -> Response:
    """Counts of requests by kind and status, the last requests (no bodies), and those
    the latency fault holds now by kind (``waiting``)."""
    counts = {kind: dict(statuses) for kind, statuses in sorted(emulator.counts.items())}
    waiting = {kind: n for kind, n in sorted(emulator.waiting.items()) if n}
    return json_response({"counts": counts, "log": list(emulator.request_log), "waiting": waiting})


async def clear_requests(emulator: Emulator, call: Call) -> Response:
    emulator.counts.clear()
    emulator.request_log.clear()
    emulator.arrivals.clear()
    return json_response({"cleared": True})


def most_in_any_window(times: list[float], seconds: float) -> int:
    """The most of ``times`` (sorted) that fall in any ``seconds``-long interval."""
    most = start = 0
    for end, at in enumerate(times):
        while at - times[start] >= seconds:
            start += 1
        most = max(most, end - start + 1)
    return most


async def rates(emulator: Emulator, call: Call) -> Response:
    """Ads API requests per access token (a short digest names it): how many, and the most
    that arrived in any one second (Snap's limit is 10 per second per token)."""
    tokens = []
    for label, arrivals in sorted(emulator.arrivals.items()):
        times = sorted(arrivals)
        tokens.append(
            {
                "token": label,
                "requests": len(times),
                "max_in_any_second": most_in_any_window(times, 1.0),
            }
        )
    return json_response({"tokens": tokens})


async def revoke_tokens(emulator: Emulator, call: Call) -> Response:
    """Revoke ``access_token`` or ``refresh_token`` if given, else every token of the user."""
    body = await _object_body(call)
    access, refresh = body.get("access_token"), body.get("refresh_token")
    if not isinstance(access, str | None) or not isinstance(refresh, str | None):
        raise ControlError("access_token and refresh_token must be strings")
    return json_response(
        {"revoked": emulator.store.revoke(access_token=access, refresh_token=refresh)}
    )


async def expire_tokens(emulator: Emulator, call: Call) -> Response:
    return json_response({"expired": emulator.store.expire_access_tokens()})


async def create_segment(emulator: Emulator, call: Call) -> Response:
    """A segment made without a token (in any ad account, the unreachable one included)."""
    body = await _object_body(call)
    ad_account_id = body.get("ad_account_id", AD_ACCOUNT_ID)
    if ad_account_id not in emulator.store.ad_accounts:
        raise ControlError(f"unknown ad account {ad_account_id!r}", 404)
    # Audiences of other kinds (lookalikes, pixel, engagement) exist in real ad accounts,
    # made in Ads Manager; the API creates only customer lists, this endpoint any kind.
    source_type = str(body.pop("source_type", "FIRST_PARTY"))
    fields = {
        "name": "Emulator segment",
        "source_type": "FIRST_PARTY",
        "retention_in_days": 9999,
        "ad_account_id": ad_account_id,
    } | body
    try:
        checked = validate_segment_fields(fields, ad_account_id=ad_account_id, creating=True)
        segment = emulator.store.create_segment(ad_account_id, checked)
    except SnapError as error:
        raise ControlError(error.message) from None
    segment.source_type = source_type
    return json_response(emulator.store.segment_json(segment))


async def members(emulator: Emulator, call: Call) -> Response:
    """Counts per schema; with ``?schema=`` also that schema's hashes (sorted), unless
    ``count_only=true``."""
    segment = emulator.store.segments.get(call.params["segment_id"])
    if segment is None:
        raise ControlError(f"segment {call.params['segment_id']} does not exist", 404)
    body: dict[str, Any] = {
        "segment_id": segment.id,
        "counts": {str(schema): len(segment.members.get(schema, ())) for schema in Schema},
    }
    schema_name = call.request.query_params.get("schema")
    if schema_name is not None:
        try:
            schema = Schema(schema_name)
        except ValueError:
            raise ControlError(f"unknown schema {schema_name!r}") from None
        digests = segment.members.get(schema, set())
        body["schema"] = str(schema)
        body["count"] = len(digests)
        if call.request.query_params.get("count_only", "").lower() not in {"1", "true", "yes"}:
            body["members"] = sorted(digest.hex() for digest in digests)
    return json_response(body)


async def complete_matching(emulator: Emulator, call: Call) -> Response:
    """Finish every PROCESSING upload now."""
    processing = [s for s in emulator.store.segments.values() if s.processing_until is not None]
    for segment in processing:
        emulator.store.settle(segment, force=True)
    return json_response({"completed": len(processing)})
