"""A small in-process Snapchat for unit tests, served through ``httpx.MockTransport``.

It keeps tokens, segments and members, and lets a test queue exact answers
(``fail_next``) ahead of the normal ones. Unlike the emulator it runs no server: the
point is speed and precise control; the contract tests use the real emulator.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import httpx
import orjson

from audiencesync.destinations.snapchat import OAuthApp, SnapchatClient, TokenSet
from audiencesync.destinations.snapchat.policy import snapchat_policy
from audiencesync.http import RetryPolicy
from audiencesync.http.clock import ManualClock

API = "https://adsapi.test"
AUTH = "https://accounts.test"
AD_ACCOUNT = "7b1c2d3e-0000-4000-8000-000000000001"
ORG = "0a1b2c3d-0000-4000-8000-00000000000a"

Responder = Callable[[httpx.Request], httpx.Response]


def error(status: int, code: str | None = None, message: str = "nope") -> httpx.Response:
    body: dict[str, object] = {
        "request_status": "ERROR",
        "request_id": "req-1",
        "debug_message": message,
        "display_message": message,
    }
    if code:
        body["error_code"] = code
    return httpx.Response(status, json=body)


@dataclass
class FakeSnap:
    clock: ManualClock
    token_ttl: float = 1800.0
    rotate_refresh_tokens: bool = True
    page_size: int = 2
    #: responses forced on the next matching requests: (method, path prefix, responder)
    queued: list[tuple[str, str, Responder]] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    members: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    segments: dict[str, dict[str, object]] = field(default_factory=dict)
    refresh_calls: int = 0
    revoked: bool = False
    refresh_delay: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self.access: dict[str, datetime] = {}
        self.refresh: set[str] = set()
        self.first_tokens = self.issue()

    # -- tokens ------------------------------------------------------------------------

    def issue(self) -> TokenSet:
        n = next(self._counter)
        access, refresh = f"access-{n}-secretvalue", f"refresh-{n}-secretvalue"
        expires = self.clock.now() + timedelta(seconds=self.token_ttl)
        self.access[access] = expires
        self.refresh.add(refresh)
        return TokenSet(access, refresh, expires, "snapchat-marketing-api")

    def expire_all(self) -> None:
        for token in self.access:
            self.access[token] = self.clock.now() - timedelta(seconds=1)

    def fail_next(self, method: str, path: str, *responses: httpx.Response | Responder) -> None:
        for response in responses:
            responder: Responder = (
                response if callable(response) else (lambda _r, resp=response: resp)
            )
            self.queued.append((method, path, responder))

    def app(self) -> OAuthApp:
        return OAuthApp("cid", "csecret-value", "http://127.0.0.1:8765/cb", AUTH)

    def client(
        self,
        *,
        policy: RetryPolicy | None = None,
        on_tokens: Callable[[TokenSet], None] | None = None,
        tokens: TokenSet | None = None,
        **kwargs: object,
    ) -> SnapchatClient:
        return SnapchatClient(
            API,
            self.app(),
            tokens or self.first_tokens,
            on_tokens or (lambda _t: None),
            policy=policy or fast_policy(),
            clock=self.clock,
            transport=httpx.MockTransport(self.handle),
            **kwargs,  # type: ignore[arg-type]
        )

    def api_requests(self, method: str | None = None, prefix: str = "/v1") -> list[httpx.Request]:
        return [
            r
            for r in self.requests
            if r.url.path.startswith(prefix) and (method is None or r.method == method)
        ]

    # -- the server --------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        with self._lock:
            self.requests.append(request)
            for index, (method, prefix, responder) in enumerate(self.queued):
                if request.method == method and request.url.path.startswith(prefix):
                    del self.queued[index]
                    return responder(request)
        if request.url.host == "accounts.test":
            return self._token(request)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ")
        if token not in self.access or self.access[token] <= self.clock.now():
            return httpx.Response(401, text="Unauthorized")
        return self._api(request)

    def _token(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if form.get("client_secret") != "csecret-value":
            return httpx.Response(401, json={"error": "invalid_client"})
        if form["grant_type"] == "authorization_code":
            if form.get("code") != "good-code":
                return httpx.Response(400, json={"error": "invalid_grant"})
            tokens = self.issue()
        else:
            if self.refresh_delay is not None:
                self.refresh_delay()
            with self._lock:
                self.refresh_calls += 1
                if self.revoked or form["refresh_token"] not in self.refresh:
                    return httpx.Response(
                        400, json={"error": "invalid_grant", "error_description": "revoked"}
                    )
                if self.rotate_refresh_tokens:
                    self.refresh.discard(form["refresh_token"])
                tokens = self.issue()
        body: dict[str, object] = {
            "access_token": tokens.access_token,
            "token_type": "Bearer",
            "expires_in": int(self.token_ttl),
            "scope": "snapchat-marketing-api",
        }
        if self.rotate_refresh_tokens or form["grant_type"] == "authorization_code":
            body["refresh_token"] = tokens.refresh_token
        return httpx.Response(200, json=body)

    def _api(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        parts = path.strip("/").split("/")
        ok = {"request_status": "success", "request_id": "r"}
        if path == "/v1/me":
            return httpx.Response(
                200,
                json={
                    **ok,
                    "me": {
                        "id": "u1",
                        "display_name": "Ada",
                        "email": "ada@example.com",
                        "organization_id": ORG,
                    },
                },
            )
        if path == "/v1/me/organizations":
            return httpx.Response(
                200,
                json={
                    **ok,
                    "organizations": [
                        {
                            "sub_request_status": "SUCCESS",
                            "organization": {"id": ORG, "name": "Org"},
                        }
                    ],
                },
            )
        if parts[:2] == ["v1", "organizations"] and parts[3] == "adaccounts":
            return httpx.Response(
                200,
                json={
                    **ok,
                    "adaccounts": [
                        {
                            "sub_request_status": "SUCCESS",
                            "adaccount": {
                                "id": AD_ACCOUNT,
                                "name": "Main",
                                "organization_id": parts[2],
                            },
                        }
                    ],
                },
            )
        if parts[:2] == ["v1", "adaccounts"] and parts[3] == "segments":
            if request.method == "POST":
                entity = orjson.loads(request.content)["segments"][0]
                segment_id = str(1000 + len(self.segments))
                self.segments[segment_id] = {
                    **entity,
                    "id": segment_id,
                    "status": "ACTIVE",
                    "upload_status": "NO_UPLOAD",
                }
                return self._segments([self.segments[segment_id]])
            if request.method == "PUT":
                entity = orjson.loads(request.content)["segments"][0]
                self.segments[entity["id"]].update(entity)
                return self._segments([self.segments[entity["id"]]])
            ordered = sorted(self.segments.values(), key=lambda s: str(s["id"]))
            offset = int(request.url.params.get("cursor", "0"))
            page = ordered[offset : offset + self.page_size]
            body = orjson.loads(self._segments(page).content)
            if offset + self.page_size < len(ordered):
                body["paging"] = {
                    "next_link": f"https://other-host.test{path}?cursor={offset + self.page_size}"
                }
            return httpx.Response(200, json=body)
        if parts[:2] == ["v1", "segments"]:
            segment_id = parts[2]
            if segment_id not in self.segments:
                return error(404, message="no such segment")
            if len(parts) == 3:
                if request.method == "DELETE":
                    del self.segments[segment_id]
                    return httpx.Response(200, json=ok)
                return self._segments([self.segments[segment_id]])
            if parts[3] == "all_users":
                for key in list(self.members):
                    if key[0] == segment_id:
                        self.members[key].clear()
                return httpx.Response(200, json=ok)
            user = orjson.loads(request.content)["users"][0]
            (schema,) = user["schema"]
            values = [row[0] for row in user["data"]]
            assert len(values) <= 100_000
            with self._lock:
                bucket = self.members.setdefault((segment_id, schema), set())
                if request.method == "POST":
                    bucket.update(values)
                else:
                    bucket.difference_update(values)
            return httpx.Response(
                200,
                json={
                    **ok,
                    "users": [
                        {
                            "sub_request_status": "SUCCESS",
                            "user": {"number_uploaded_users": len(values)},
                        }
                    ],
                },
            )
        return error(404)

    def _segments(self, segments: list[dict[str, object]]) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "request_status": "SUCCESS",
                "request_id": "r",
                "segments": [{"sub_request_status": "SUCCESS", "segment": s} for s in segments],
            },
        )

    def add_segment(self, segment_id: str = "1000", name: str = "Buyers") -> str:
        self.segments[segment_id] = {
            "id": segment_id,
            "name": name,
            "ad_account_id": AD_ACCOUNT,
            "source_type": "FIRST_PARTY",
            "retention_in_days": 9999,
            "status": "ACTIVE",
            "upload_status": "COMPLETE",
            "targetable_status": "READY",
            "approximate_number_users": 5000,
        }
        return segment_id


def fast_policy(**overrides: object) -> RetryPolicy:
    """Snapchat's table with deterministic jitter (the full ceiling) and small waits."""
    policy = snapchat_policy()
    values: dict[str, object] = {
        "max_attempts": 4,
        "max_rate_limited_attempts": 6,
        "backoff_base_seconds": 0.5,
        "backoff_max_seconds": 8.0,
        "jitter": lambda _low, high: high,
    }
    values.update(overrides)
    from dataclasses import replace

    return replace(policy, **values)  # type: ignore[arg-type]


def now_utc() -> datetime:
    return datetime.now(UTC)
