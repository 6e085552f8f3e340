"""The Ads API under ``/v1``: who the token is, ad accounts, segments and their users.

Handlers run after the dispatcher has authenticated the token, applied the rate limit
and injected any fault; they validate strictly and answer in Snap's envelope.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson
from starlette.responses import Response

from audiencesync.emulator.config import MAX_IDS_PER_REQUEST, MAX_PAGE_SIZE, Schema
from audiencesync.emulator.responses import envelope, json_response, new_request_id
from audiencesync.emulator.store import (
    AdAccount,
    Organization,
    SnapError,
    User,
    bad_request,
    validate_segment_fields,
)

if TYPE_CHECKING:
    from audiencesync.emulator.app import Call, Emulator

_HEX_DIGITS = b"0123456789abcdef"
_SCHEMAS = ", ".join(schema.value for schema in Schema)
_USERS_SHAPE = '{"users": [{"schema": ["EMAIL_SHA256"], "data": [["<sha256 hex>"], ...]}]}'


def _organization_json(organization: Organization) -> dict[str, Any]:
    return {
        "id": organization.id,
        "name": organization.name,
        "type": "ENTERPRISE",
        "state": "ACTIVE",
        "country": "US",
    }


def _ad_account_json(account: AdAccount) -> dict[str, Any]:
    return {
        "id": account.id,
        "name": account.name,
        "type": "PARTNER",
        "status": "ACTIVE",
        "organization_id": account.organization_id,
        "currency": "USD",
        "timezone": "UTC",
    }


async def _json_body(call: Call) -> Any:
    """The request body as JSON; 406 when it is not declared JSON, 400 when it is not JSON."""
    content_type = call.request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise SnapError(
            406, "the body must be JSON sent as Content-Type: application/json", "E1006"
        )
    body = await call.request.body()
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise bad_request(f"the body is not valid JSON: {error}") from None


async def me(emulator: Emulator, call: Call, user: User) -> Response:
    body = {
        "request_status": "SUCCESS",
        "request_id": new_request_id(),
        "me": {
            "id": user.id,
            "email": user.email,
            "display_name": user.display_name,
            "organization_id": user.organization_id,
            "member_status": "MEMBER",
        },
    }
    return json_response(body)


async def organizations(emulator: Emulator, call: Call, user: User) -> Response:
    found = emulator.store.organizations_of(user)
    return json_response(
        envelope("organizations", "organization", [_organization_json(o) for o in found])
    )


async def ad_accounts(emulator: Emulator, call: Call, user: User) -> Response:
    found = emulator.store.ad_accounts_of(user, call.params["organization_id"])
    return json_response(envelope("adaccounts", "adaccount", [_ad_account_json(a) for a in found]))


async def ad_account(emulator: Emulator, call: Call, user: User) -> Response:
    account = emulator.store.reachable_ad_account(user, call.params["ad_account_id"])
    return json_response(envelope("adaccounts", "adaccount", [_ad_account_json(account)]))


def _segments_items(document: Any) -> list[Any]:
    if not isinstance(document, dict) or not isinstance(document.get("segments"), list):
        raise bad_request('the body must be {"segments": [{...}]}')
    items: list[Any] = document["segments"]
    if not items:
        raise bad_request("segments must hold at least one segment")
    return items


async def create_segment(emulator: Emulator, call: Call, user: User) -> Response:
    store = emulator.store
    ad_account_id = store.reachable_ad_account(user, call.params["ad_account_id"]).id
    items = _segments_items(await _json_body(call))
    validated = [
        validate_segment_fields(item, ad_account_id=ad_account_id, creating=True) for item in items
    ]
    created = [store.create_segment(ad_account_id, fields) for fields in validated]
    return json_response(envelope("segments", "segment", [store.segment_json(s) for s in created]))


def _query_int(call: Call, name: str, low: int, high: int) -> int | None:
    raw = call.request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise bad_request(f"{name} must be an integer from {low} to {high}")
    return int(raw)


async def list_segments(emulator: Emulator, call: Call, user: User) -> Response:
    store = emulator.store
    ad_account_id = store.reachable_ad_account(user, call.params["ad_account_id"]).id
    limit = _query_int(call, "limit", 1, MAX_PAGE_SIZE) or emulator.config.page_size
    cursor = _query_int(call, "cursor", 0, 10**30)
    page, more = store.segments_page(ad_account_id, cursor, limit)
    body = envelope("segments", "segment", [store.segment_json(s) for s in page])
    body["paging"] = {}
    if more:
        query = urlencode({"limit": limit, "cursor": page[-1].id})
        body["paging"]["next_link"] = str(call.request.url.replace(query=query))
    return json_response(body)


async def update_segment(emulator: Emulator, call: Call, user: User) -> Response:
    store = emulator.store
    ad_account_id = store.reachable_ad_account(user, call.params["ad_account_id"]).id
    items = _segments_items(await _json_body(call))
    changes = []
    for item in items:
        segment_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(segment_id, str):
            raise bad_request("each segment to update needs its id (a numeric string)")
        segment = store.reachable_segment(user, segment_id)
        if segment.ad_account_id != ad_account_id:
            raise bad_request(f"segment {segment_id} is not in ad account {ad_account_id}")
        fields = validate_segment_fields(item, ad_account_id=ad_account_id, creating=False)
        changes.append((segment, fields))
    for segment, fields in changes:
        for name, value in fields.items():
            setattr(segment, name, value)
        segment.updated_at = store.clock()
    return json_response(
        envelope("segments", "segment", [store.segment_json(s) for s, _ in changes])
    )


async def get_segment(emulator: Emulator, call: Call, user: User) -> Response:
    segment = emulator.store.reachable_segment(user, call.params["segment_id"])
    return json_response(envelope("segments", "segment", [emulator.store.segment_json(segment)]))


async def delete_segment(emulator: Emulator, call: Call, user: User) -> Response:
    store = emulator.store
    segment = store.reachable_segment(user, call.params["segment_id"])
    shown = store.segment_json(segment)
    store.delete_segment(segment)
    return json_response(envelope("segments", "segment", [shown]))


def parse_users(document: Any, segment_id: str) -> tuple[Schema, list[bytes]]:
    """The schema and the 32-byte digests of an add/remove users body; raises SnapError.

    Fast on purpose (100,000 ids in a few tens of milliseconds): the checks run over
    the joined values, and only a failure looks for the offending row.
    """
    if not isinstance(document, dict) or not isinstance(document.get("users"), list):
        raise bad_request(f"the body must be {_USERS_SHAPE}")
    users = document["users"]
    if len(users) != 1:
        raise bad_request(
            f"users must hold exactly one element (one schema per request), found {len(users)}"
        )
    entry = users[0]
    if not isinstance(entry, dict):
        raise bad_request(f"users[0] must be an object: {_USERS_SHAPE}")
    if "id" in entry and entry["id"] != segment_id:
        raise bad_request("users[0].id differs from the segment id in the path")
    schema_list = entry.get("schema")
    if not isinstance(schema_list, list) or not schema_list:
        raise bad_request(
            'users[0].schema must be a list holding one schema, e.g. ["EMAIL_SHA256"]'
        )
    if len(schema_list) > 1:
        raise bad_request(
            f"one schema per request: users[0].schema holds {len(schema_list)} schemas"
        )
    try:
        schema = Schema(schema_list[0])
    except ValueError:
        raise bad_request(f"unknown schema {schema_list[0]!r}: use one of {_SCHEMAS}") from None
    data = entry.get("data")
    if not isinstance(data, list) or not data:
        raise bad_request("users[0].data must be a non-empty list of one-element lists")
    if len(data) > MAX_IDS_PER_REQUEST:
        raise bad_request(
            f"at most {MAX_IDS_PER_REQUEST:,} identifiers per request, got {len(data):,}"
        )
    values = [row[0] for row in data if type(row) is list and len(row) == 1]
    if len(values) != len(data):
        index = next(i for i, row in enumerate(data) if type(row) is not list or len(row) != 1)
        raise bad_request(f"users[0].data[{index}] must be a list holding one value")
    try:
        joined = "".join(values)
    except TypeError:
        index = next(i for i, value in enumerate(values) if not isinstance(value, str))
        raise bad_request(f"users[0].data[{index}][0] must be a string") from None
    well_formed = (
        len(joined) == 64 * len(values)
        and set(map(len, values)) == {64}
        and joined.isascii()
        and not joined.encode("ascii").translate(None, _HEX_DIGITS)
    )
    if not well_formed:
        index = next(i for i, value in enumerate(values) if not _is_sha256_hex(value))
        raise bad_request(
            f"users[0].data[{index}][0] is not a SHA-256 hash written as 64 lowercase hex "
            "characters: normalize and hash identifiers before sending them"
        )
    blob = bytes.fromhex(joined)
    return schema, [blob[i : i + 32] for i in range(0, len(blob), 32)]


def _is_sha256_hex(value: str) -> bool:
    return (
        len(value) == 64
        and value.isascii()
        and not value.encode("ascii").translate(None, _HEX_DIGITS)
    )


def _users_answer(count: int) -> Response:
    return json_response(envelope("users", "user", [{"number_uploaded_users": count}]))


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: a 100,000-id body is 200,000 new objects (no
    cycles), and the collections they would trigger cost more than parsing them."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


async def _users_body(call: Call, segment_id: str) -> tuple[Schema, list[bytes]]:
    with _gc_paused():
        return parse_users(await _json_body(call), segment_id)


async def add_users(emulator: Emulator, call: Call, user: User) -> Response:
    store = emulator.store
    segment = store.reachable_segment(user, call.params["segment_id"])
    schema, digests = await _users_body(call, segment.id)
    call.ids = len(digests)
    store.add_members(segment, schema, digests)
    return _users_answer(len(digests))


async def remove_users(emulator: Emulator, call: Call, user: User) -> Response:
    store = emulator.store
    segment = store.reachable_segment(user, call.params["segment_id"])
    schema, digests = await _users_body(call, segment.id)
    call.ids = len(digests)
    store.remove_members(segment, schema, digests)
    return _users_answer(len(digests))


async def remove_all_users(emulator: Emulator, call: Call, user: User) -> Response:
    store = emulator.store
    segment = store.reachable_segment(user, call.params["segment_id"])
    store.remove_all_members(segment)
    return json_response(envelope("segments", "segment", [store.segment_json(segment)]))
