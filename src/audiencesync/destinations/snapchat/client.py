"""The Snapchat Marketing API client: synchronous, thread-safe, one keep-alive pool.

Every call goes through :class:`audiencesync.http.RetryingSender` (policy table, 10
requests/s per token, a concurrency limit, refresh-and-replay on 401) and ends either in
parsed data or in an :mod:`audiencesync.errors` error marked retryable or not.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson

from audiencesync.destinations.base import Hashes
from audiencesync.destinations.snapchat.auth import TokenKeeper
from audiencesync.destinations.snapchat.bodies import users_body
from audiencesync.destinations.snapchat.models import (
    Organization,
    Schema,
    Segment,
    SnapAdAccount,
    SnapUser,
    UploadResult,
)
from audiencesync.destinations.snapchat.oauth import OAuthApp, TokenSet, refresh_tokens
from audiencesync.destinations.snapchat.policy import describe_api_error, snapchat_policy
from audiencesync.errors import DestinationError, UserInputError
from audiencesync.http import (
    Budgets,
    Call,
    Clock,
    RateBudgets,
    RetryingSender,
    RetryPolicy,
    SystemClock,
    shared_budgets,
)
from audiencesync.settings import Settings

logger = logging.getLogger(__name__)

#: Snap's cap on identifiers in one add or remove request.
MAX_IDS_PER_REQUEST = 100_000
MAX_SEGMENT_NAME_CHARS = 375
#: ``retention_in_days`` meaning "lifetime".
RETENTION_LIFETIME = 9999
#: a safety stop for a server whose ``next_link`` never ends.
_MAX_PAGES = 10_000


class SnapchatClient:
    """One Snapchat connection (one token set). Share it between threads.

    ``on_tokens`` receives every new :class:`TokenSet` (refresh tokens may rotate): store
    it, or the next run meets ``invalid_grant``. ``policy``, ``clock`` and ``transport``
    exist for tests and tuning; :meth:`from_settings` builds all three from settings.
    """

    def __init__(
        self,
        api_base_url: str,
        app: OAuthApp,
        tokens: TokenSet,
        on_tokens: Callable[[TokenSet], None],
        *,
        policy: RetryPolicy | None = None,
        clock: Clock | None = None,
        transport: httpx.BaseTransport | None = None,
        requests_per_second: float = 10.0,
        max_concurrency: int = 4,
        timeout_seconds: float = 60.0,
        token_refresh_margin_seconds: float = 120.0,
        max_ids_per_request: int = MAX_IDS_PER_REQUEST,
        connection_name: str = "NAME",
        budgets: Budgets | None = None,
    ) -> None:
        if not 1 <= max_ids_per_request <= MAX_IDS_PER_REQUEST:
            raise ValueError(f"max_ids_per_request must be in 1..{MAX_IDS_PER_REQUEST}")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._base = api_base_url.rstrip("/")
        split = urlsplit(self._base)
        self._origin = f"{split.scheme}://{split.netloc}"
        self._app = app
        self._policy = policy or snapchat_policy()
        self._clock = clock or SystemClock()
        # Snap counts requests per access token: clients on the real clock share one
        # budget per token in this process (a test clock gets budgets of its own), or
        # the budgets given (shared by every process through the control database).
        if budgets is None:
            budgets = (
                shared_budgets(requests_per_second, self._clock)
                if clock is None
                else RateBudgets(requests_per_second, self._clock)
            )
        self._max_ids = max_ids_per_request
        self._connection_name = connection_name
        pool = max_concurrency + 2  # room for a token refresh beside full concurrency
        self._http = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(timeout_seconds),
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
            headers={"User-Agent": "audiencesync", "Accept": "application/json"},
        )
        self._sender = RetryingSender(
            self._http,
            self._policy,
            self._clock,
            limiter=budgets,
            slots=threading.BoundedSemaphore(max_concurrency),
            describe_error=describe_api_error,
            connection_name=connection_name,
        )
        self._keeper = TokenKeeper(
            tokens, self._refresh, on_tokens, self._clock, token_refresh_margin_seconds
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        tokens: TokenSet,
        on_tokens: Callable[[TokenSet], None],
        *,
        clock: Clock | None = None,
        transport: httpx.BaseTransport | None = None,
        connection_name: str = "NAME",
        budgets: Budgets | None = None,
    ) -> SnapchatClient:
        """A client with every knob from ``settings`` (``AUDIENCESYNC_SNAPCHAT_*``, ``_HTTP_*``).

        Raises NotSetUpError when the OAuth app's credentials are not set.
        """
        return cls(
            settings.snapchat_api_url,
            OAuthApp.from_settings(settings),
            tokens,
            on_tokens,
            policy=snapchat_policy(settings),
            clock=clock,
            transport=transport,
            requests_per_second=settings.http_requests_per_second,
            max_concurrency=settings.http_max_concurrency,
            timeout_seconds=settings.http_timeout_seconds,
            token_refresh_margin_seconds=settings.token_refresh_margin_seconds,
            max_ids_per_request=min(settings.batch_size, MAX_IDS_PER_REQUEST),
            connection_name=connection_name,
            budgets=budgets,
        )

    # -- lifecycle -------------------------------------------------------------------

    @property
    def tokens(self) -> TokenSet:
        """The current tokens (after any refresh)."""
        return self._keeper.tokens

    @property
    def max_ids_per_request(self) -> int:
        return self._max_ids

    def request_counters(self) -> dict[str, int]:
        """Requests this client sent again: ``retries`` (errors) and ``throttled`` (429)."""
        return self._sender.counters()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SnapchatClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- who the token belongs to ------------------------------------------------------

    def me(self) -> SnapUser:
        """The Snapchat user of this connection."""
        payload = self._call("GET", "/v1/me", target="the connected user")
        data = payload.get("me")
        if isinstance(data, list) and data:  # lenient: a plural wrapper
            data = data[0].get("me", data[0]) if isinstance(data[0], dict) else None
        if not isinstance(data, dict):
            raise _unexpected("GET /v1/me", "no 'me' object")
        return SnapUser.from_api(data)

    def organizations(self) -> list[Organization]:
        """Organizations the user belongs to (every page)."""
        return [
            Organization.from_api(item)
            for item in self._list(
                "/v1/me/organizations", {}, "organizations", "organization", "your organizations"
            )
        ]

    def ad_accounts(self, organization_id: str) -> list[SnapAdAccount]:
        """Ad accounts of an organization the user can reach (every page)."""
        return [
            SnapAdAccount.from_api(item, organization_id)
            for item in self._list(
                "/v1/organizations/{organization_id}/adaccounts",
                {"organization_id": organization_id},
                "adaccounts",
                "adaccount",
                f"organization {organization_id}",
            )
        ]

    # -- segments ----------------------------------------------------------------------

    def create_segment(
        self,
        ad_account_id: str,
        name: str,
        *,
        description: str = "",
        retention_in_days: int = RETENTION_LIFETIME,
        source_type: str = "FIRST_PARTY",
    ) -> Segment:
        """Create a customer-list segment. Not retried after an ambiguous failure."""
        _check_name(name)
        body = {
            "segments": [
                {
                    "name": name,
                    "description": description,
                    "source_type": source_type,
                    "retention_in_days": retention_in_days,
                    "ad_account_id": ad_account_id,
                }
            ]
        }
        payload = self._call(
            "POST",
            "/v1/adaccounts/{ad_account_id}/segments",
            ids={"ad_account_id": ad_account_id},
            target=f"ad account {ad_account_id}",
            body=orjson.dumps(body),
            idempotent=False,
        )
        return self._one_segment(payload, "POST /v1/adaccounts/{ad_account_id}/segments")

    def get_segment(self, segment_id: str) -> Segment:
        """The segment; DestinationNotFoundError when Snapchat does not know it."""
        payload = self._call(
            "GET",
            "/v1/segments/{segment_id}",
            ids={"segment_id": segment_id},
            target=f"segment {segment_id}",
        )
        return self._one_segment(payload, "GET /v1/segments/{segment_id}")

    def list_segments(self, ad_account_id: str) -> list[Segment]:
        """Every segment of the ad account, following ``paging.next_link`` to the end."""
        return [
            Segment.from_api(item)
            for item in self._list(
                "/v1/adaccounts/{ad_account_id}/segments",
                {"ad_account_id": ad_account_id},
                "segments",
                "segment",
                f"ad account {ad_account_id}",
            )
        ]

    def update_segment(
        self,
        ad_account_id: str,
        segment_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        retention_in_days: int | None = None,
    ) -> Segment:
        """Change a segment's name, description or retention; other fields are kept."""
        current = self.get_segment(segment_id)
        if name is not None:
            _check_name(name)
        entity = {
            "id": segment_id,
            "ad_account_id": ad_account_id,
            "name": name if name is not None else current.name,
            "description": description if description is not None else current.description,
            "source_type": current.source_type or "FIRST_PARTY",
            "retention_in_days": (
                retention_in_days
                if retention_in_days is not None
                else current.retention_in_days or RETENTION_LIFETIME
            ),
        }
        payload = self._call(
            "PUT",
            "/v1/adaccounts/{ad_account_id}/segments",
            ids={"ad_account_id": ad_account_id, "segment_id": segment_id},
            target=f"segment {segment_id} of ad account {ad_account_id}",
            body=orjson.dumps({"segments": [entity]}),
        )
        return self._one_segment(payload, "PUT /v1/adaccounts/{ad_account_id}/segments")

    def delete_segment(self, segment_id: str) -> None:
        """Delete the segment."""
        self._call(
            "DELETE",
            "/v1/segments/{segment_id}",
            ids={"segment_id": segment_id},
            target=f"segment {segment_id}",
        )

    # -- members -----------------------------------------------------------------------

    def add_users(self, segment_id: str, schema: Schema | str, hashes: Hashes) -> UploadResult:
        """Add hashed identifiers of one schema, at most 100,000 per request.

        Each request is acknowledged before the next is sent; an error after some
        requests leaves those applied (adding again is harmless at Snapchat).
        """
        return self._upload("POST", segment_id, Schema(schema), hashes)

    def remove_users(self, segment_id: str, schema: Schema | str, hashes: Hashes) -> UploadResult:
        """Remove hashed identifiers of one schema, at most 100,000 per request."""
        return self._upload("DELETE", segment_id, Schema(schema), hashes)

    def remove_all_users(self, segment_id: str) -> None:
        """Remove every member of the segment."""
        self._call(
            "DELETE",
            "/v1/segments/{segment_id}/all_users",
            ids={"segment_id": segment_id},
            target=f"the ad account of segment {segment_id}",
        )

    def _upload(self, method: str, segment_id: str, schema: Schema, hashes: Hashes) -> UploadResult:
        requests = 0
        bytes_sent = 0
        uploaded: int | None = None
        for start in range(0, len(hashes), self._max_ids):
            chunk = hashes[start : start + self._max_ids]
            body = users_body(schema, chunk)
            payload = self._call(
                method,
                "/v1/segments/{segment_id}/users",
                ids={"segment_id": segment_id},
                target=f"the ad account of segment {segment_id}",
                body=body,
                note=f"schema={schema.value} count={len(chunk)} bytes={len(body)}",
            )
            requests += 1
            bytes_sent += len(body)
            for user in _entities(payload, "users", "user"):
                count = user.get("number_uploaded_users")
                if isinstance(count, int) and not isinstance(count, bool):
                    uploaded = (uploaded or 0) + count
        return UploadResult(
            identifiers=len(hashes),
            requests=requests,
            bytes_sent=bytes_sent,
            number_uploaded_users=uploaded,
        )

    # -- plumbing ------------------------------------------------------------------------

    def _refresh(self, refresh_token: str) -> TokenSet:
        return refresh_tokens(
            self._app,
            refresh_token,
            self._http,
            policy=self._policy,
            clock=self._clock,
            connection_name=self._connection_name,
        )

    def _call(
        self,
        method: str,
        path: str,
        *,
        ids: Mapping[str, str] | None = None,
        target: str | None = None,
        body: bytes | None = None,
        url: str | None = None,
        idempotent: bool = True,
        note: str = "",
    ) -> dict[str, Any]:
        ids = dict(ids or {})
        if url is None:
            url = self._base + path.format_map({k: quote(v, safe="") for k, v in ids.items()})
        headers = {"Content-Type": "application/json"} if body is not None else None
        request = self._http.build_request(method, url, content=body, headers=headers)
        call = Call(request, path, ids, target, idempotent, note)
        response = self._sender.send(call, self._keeper)
        return _envelope(response, f"{method} {path}")

    def _list(
        self,
        path: str,
        ids: Mapping[str, str],
        plural: str,
        singular: str,
        target: str,
    ) -> Iterator[dict[str, Any]]:
        url: str | None = None
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            payload = self._call("GET", path, ids=ids, target=target, url=url)
            yield from _entities(payload, plural, singular)
            paging = payload.get("paging")
            next_link = paging.get("next_link") if isinstance(paging, dict) else None
            if not isinstance(next_link, str) or not next_link or next_link in seen:
                return
            seen.add(next_link)
            url = self._same_origin(next_link)
        raise _unexpected(f"GET {path}", f"more than {_MAX_PAGES} pages")

    def _same_origin(self, link: str) -> str:
        # next_link is absolute; keep only its path and query so the bearer token never
        # goes to a host other than the configured API.
        split = urlsplit(link)
        query = f"?{split.query}" if split.query else ""
        return f"{self._origin}{split.path}{query}"

    def _one_segment(self, payload: dict[str, Any], what: str) -> Segment:
        items = list(_entities(payload, "segments", "segment"))
        if not items:
            raise _unexpected(what, "no segment in the answer")
        return Segment.from_api(items[0])


def _check_name(name: str) -> None:
    if not name.strip() or len(name) > MAX_SEGMENT_NAME_CHARS:
        raise UserInputError(
            f"a Snapchat audience name must be 1 to {MAX_SEGMENT_NAME_CHARS} characters: "
            "choose another name."
        )


def _unexpected(what: str, why: str) -> DestinationError:
    return DestinationError(
        f"Snapchat answered {what} in an unexpected shape ({why}): report it to the "
        "audiencesync maintainers."
    )


def _envelope(response: httpx.Response, what: str) -> dict[str, Any]:
    if not response.content.strip():
        return {}
    try:
        payload = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise _unexpected(what, "not JSON") from None
    if not isinstance(payload, dict):
        raise _unexpected(what, "not a JSON object")
    status = payload.get("request_status")
    if isinstance(status, str) and status.casefold() == "error":
        detail = payload.get("display_message") or payload.get("debug_message") or ""
        code = payload.get("error_code")
        raise DestinationError(
            f"Snapchat reported an error for {what}"
            f"{' (' + str(code) + ')' if code else ''}"
            f"{': ' + str(detail)[:240] if detail else ''}.",
            status=response.status_code,
            error_code=str(code) if code else None,
            request_id=str(payload.get("request_id") or "") or None,
        )
    return payload


def _entities(payload: Mapping[str, Any], plural: str, singular: str) -> Iterator[dict[str, Any]]:
    items = payload.get(plural)
    if not isinstance(items, list):
        return
    for item in items:
        if not isinstance(item, dict):
            continue
        status = item.get("sub_request_status")
        if isinstance(status, str) and status.casefold() == "error":
            reason = item.get("sub_request_error_reason") or "no reason given"
            raise DestinationError(
                f"Snapchat refused part of the request ({plural}): {str(reason)[:240]}."
            )
        entity = item.get(singular, item)
        if isinstance(entity, dict):
            yield entity
