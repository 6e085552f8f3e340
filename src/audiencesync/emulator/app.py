"""The emulator as one ASGI application: routing, the Ads API prologue (token, rate
limit, injected faults), request counting, latency and dropped connections.

Paths tell the three areas apart on one port: ``/login/oauth2/...`` (OAuth, the auth
base URL), ``/v1/...`` (Ads API, the API base URL) and ``/_emulator/...`` (control).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from audiencesync.emulator import ads, control, oauth, persistence
from audiencesync.emulator.config import EmulatorConfig, ScriptedFault
from audiencesync.emulator.faults import FaultInjector, RateLimiter
from audiencesync.emulator.responses import (
    snap_error,
    snap_error_from,
    unauthorized,
)
from audiencesync.emulator.store import SnapError, Store, Unauthorized, User

logger = logging.getLogger(__name__)

REQUEST_LOG_SIZE = 10_000

Area = Literal["oauth", "api", "control"]


@dataclass(slots=True)
class Call:
    """One request as handlers see it."""

    request: Request
    params: dict[str, str]
    kind: str
    fault: ScriptedFault | None = None
    #: identifiers in the body (users calls), for the request log.
    ids: int | None = None


ApiHandler = Callable[["Emulator", Call, User], Awaitable[Response]]
PlainHandler = Callable[["Emulator", Call], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    kind: str
    area: Area
    handler: ApiHandler | PlainHandler = field(repr=False)


def _route(method: str, path: str, kind: str, area: Area, handler: Any) -> Route:
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
    return Route(method, re.compile(f"^{regex}$"), kind, area, handler)


_C = control.PREFIX
_ORG = "/v1/organizations/{organization_id}"
_ACCOUNT = "/v1/adaccounts/{ad_account_id}"
_SEGMENT = "/v1/segments/{segment_id}"
ROUTES: tuple[Route, ...] = (
    _route("GET", oauth.AUTHORIZE_PATH, "oauth_authorize", "oauth", oauth.authorize_page),
    _route("POST", oauth.AUTHORIZE_PATH, "oauth_approve", "oauth", oauth.approve_form),
    _route("POST", oauth.TOKEN_PATH, "oauth_token", "oauth", oauth.token),
    _route("GET", "/v1/me", "me", "api", ads.me),
    _route("GET", "/v1/me/organizations", "organizations", "api", ads.organizations),
    _route("GET", f"{_ORG}/adaccounts", "ad_accounts", "api", ads.ad_accounts),
    _route("GET", _ACCOUNT, "ad_account", "api", ads.ad_account),
    _route("POST", f"{_ACCOUNT}/segments", "create_segment", "api", ads.create_segment),
    _route("GET", f"{_ACCOUNT}/segments", "list_segments", "api", ads.list_segments),
    _route("PUT", f"{_ACCOUNT}/segments", "update_segment", "api", ads.update_segment),
    _route("GET", _SEGMENT, "get_segment", "api", ads.get_segment),
    _route("DELETE", _SEGMENT, "delete_segment", "api", ads.delete_segment),
    _route("POST", f"{_SEGMENT}/users", "add_users", "api", ads.add_users),
    _route("DELETE", f"{_SEGMENT}/users", "remove_users", "api", ads.remove_users),
    _route("DELETE", f"{_SEGMENT}/all_users", "remove_all_users", "api", ads.remove_all_users),
    _route("GET", f"{_C}/health", "health", "control", control.health),
    _route("GET", f"{_C}/state", "state", "control", control.state),
    _route("POST", f"{_C}/reset", "reset", "control", control.reset),
    _route("POST", f"{_C}/save", "save", "control", control.save),
    _route("GET", f"{_C}/faults", "faults", "control", control.get_faults),
    _route("POST", f"{_C}/faults", "faults", "control", control.set_faults),
    _route("GET", f"{_C}/settings", "settings", "control", control.get_settings),
    _route("POST", f"{_C}/settings", "settings", "control", control.set_settings),
    _route("GET", f"{_C}/requests", "requests", "control", control.requests),
    _route("DELETE", f"{_C}/requests", "requests", "control", control.clear_requests),
    _route("GET", f"{_C}/rates", "rates", "control", control.rates),
    _route("POST", f"{_C}/tokens/revoke", "revoke", "control", control.revoke_tokens),
    _route("POST", f"{_C}/tokens/expire", "expire", "control", control.expire_tokens),
    _route("POST", f"{_C}/segments", "segment", "control", control.create_segment),
    _route("GET", f"{_C}/segments/{{segment_id}}/members", "members", "control", control.members),
    _route("POST", f"{_C}/matching/complete", "matching", "control", control.complete_matching),
)


def _match(method: str, path: str) -> tuple[Route | None, dict[str, str], list[str]]:
    """The route for a request, its path parameters, and the methods the path allows."""
    allowed: list[str] = []
    for route in ROUTES:
        found = route.pattern.match(path)
        if found is None:
            continue
        if route.method == method:
            return route, found.groupdict(), allowed
        allowed.append(route.method)
    return None, {}, allowed


class DroppedConnectionError(Exception):
    """Raised to make a server without transport access close the connection."""


class Emulator:
    """The emulated Snapchat: state, settings, faults and counters, served over ASGI."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.initial_config = config
        self.config = config
        self.store = self._new_store()
        self.injector = FaultInjector(config.faults)
        self.limiter = RateLimiter()
        self.counts: defaultdict[str, Counter[str]] = defaultdict(Counter)
        #: requests the latency fault holds right now, by kind (a test waits for one).
        self.waiting: Counter[str] = Counter()
        self.request_log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)
        #: arrival times (monotonic seconds) of Ads API requests per access token, keyed
        #: by a short digest of the token (the token itself is never shown).
        self.arrivals: defaultdict[str, deque[float]] = defaultdict(
            lambda: deque(maxlen=REQUEST_LOG_SIZE)
        )
        self.loaded_from_state = (
            persistence.load(self.store, config.state_path) if config.state_path else False
        )

    def _new_store(self) -> Store:
        config = self.config
        return Store(
            config.clock,
            processing_seconds=config.processing_seconds,
            match_rate=config.match_rate,
        )

    def configure(self, config: EmulatorConfig) -> None:
        """Apply changed runtime settings."""
        self.config = config
        self.store.processing_seconds = config.processing_seconds
        self.store.match_rate = config.match_rate

    def reset(self) -> None:
        """Back to the seed, with the settings and faults the emulator started with."""
        self.config = self.initial_config
        self.store = self._new_store()
        self.injector = FaultInjector(self.config.faults)
        self.limiter.reset()
        self.counts.clear()
        self.request_log.clear()
        self.arrivals.clear()

    def save(self) -> Path | None:
        """Write the snapshot if a state file is configured; the path written, or None."""
        path = self.config.state_path
        if path is None:
            return None
        persistence.save(self.store, path)
        return path

    # ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    self.save()
                except Exception as error:
                    logger.exception("could not save the emulator state")
                    await send({"type": "lifespan.shutdown.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method, path = scope["method"], scope["path"]
        route, params, allowed = _match(method, path)
        request = Request(scope, receive)
        kind = route.kind if route else "unknown"
        call = Call(request, params, kind)
        status: list[int] = []
        drop_after = False

        async def tracking_send(message: Message) -> None:
            nonlocal drop_after
            if message["type"] == "http.response.start":
                if call.fault is ScriptedFault.DROP_AFTER and not drop_after:
                    drop_after = True
                    _abort(send)
                status.append(message["status"])
            if not drop_after:
                await send(message)

        if route is not None and route.area == "api":
            call.fault = self.injector.draw(kind)
            await self._delay(kind)
            if call.fault is ScriptedFault.DROP:
                _abort(send)
                await _wait_for_disconnect(receive)
                self._record(call, "dropped", started)
                return

        response = await self._respond(route, call, allowed)
        await response(scope, receive, tracking_send)
        if drop_after:
            await _wait_for_disconnect(receive)
        if route is None or route.area != "control":
            self._record(call, "dropped" if drop_after else str(status[0]), started)

    async def _delay(self, kind: str) -> None:
        """The ``latency_ms`` fault: wait that long, re-reading it as it waits, so a test
        that lowers or clears it releases the requests already waiting (a gate it opens
        when it is ready, whatever the machine's load)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.waiting[kind] += 1
        try:
            while self.injector.applies_to(kind):
                left = self.injector.faults.latency_ms / 1000 - (loop.time() - started)
                if left <= 0:
                    return
                await asyncio.sleep(min(left, 0.02))
        finally:
            self.waiting[kind] -= 1

    async def _respond(self, route: Route | None, call: Call, allowed: list[str]) -> Response:
        if route is None:
            if allowed:
                return snap_error(
                    405,
                    f"{call.request.method} is not allowed here",
                    "E1005",
                    headers={"Allow": ", ".join(allowed)},
                )
            return snap_error(404, f"no such endpoint: {call.request.url.path}", "E1004")
        try:
            if route.area == "api":
                return await self._api(route, call)
            handler: PlainHandler = route.handler  # type: ignore[assignment]
            return await handler(self, call)
        except control.ControlError as error:
            return control.control_error(error)

    async def _api(self, route: Route, call: Call) -> Response:
        """Token, rate limit, injected faults, then the handler (in that order)."""
        try:
            user = self.store.authenticate(call.request.headers.get("authorization"))
        except Unauthorized:
            return unauthorized()
        fault = call.fault
        if fault is ScriptedFault.UNAUTHORIZED:
            return unauthorized()
        token = call.request.headers["authorization"].partition(" ")[2].strip()
        label = hashlib.sha256(token.encode()).hexdigest()[:12]
        self.arrivals[label].append(time.monotonic())
        if not self.limiter.allow(token, self.config.rate_limit, self.config.clock()):
            return snap_error(
                429,
                f"rate limit of {self.config.rate_limit:g} requests per second per token exceeded",
                "E1008",
                display_message="Too many requests",
            )
        if fault is ScriptedFault.TOO_MANY_REQUESTS:
            retry_after = self.injector.faults.retry_after
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
            return snap_error(429, "too many requests (injected)", "E1008", headers=headers)
        if fault is ScriptedFault.SERVER_ERROR:
            return snap_error(500, "internal error (injected)", "E5000")
        if fault is ScriptedFault.UNAVAILABLE:
            # Maintenance pages are not JSON: clients must not need the body.
            return Response(
                "Service temporarily unavailable (maintenance)", 503, media_type="text/plain"
            )
        handler: ApiHandler = route.handler  # type: ignore[assignment]
        try:
            return await handler(self, call, user)
        except SnapError as error:
            return snap_error_from(error)

    def _record(self, call: Call, status: str, started: float) -> None:
        self.counts[call.kind][status] += 1
        entry = {
            "kind": call.kind,
            "method": call.request.method,
            "path": call.request.url.path,
            "status": status,
            "ids": call.ids,
            "ms": round((time.perf_counter() - started) * 1000, 1),
        }
        self.request_log.append(entry)
        logger.info(
            "%s %s %s -> %s in %.0f ms",
            call.kind,
            entry["method"],
            entry["path"],
            status,
            entry["ms"],
        )


def _abort(send: Send) -> None:
    """Close the client's connection at once, without an answer.

    uvicorn hands the application its RequestResponseCycle.send, whose owner holds the
    asyncio transport; aborting it is what a crashed peer or a proxy reset looks like
    to the client (a transport error). Another server gets an exception instead.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise DroppedConnectionError
    transport.abort()


async def _wait_for_disconnect(receive: Receive) -> None:
    # Until the server has seen the connection go, it would answer a 500 of its own.
    while (await receive())["type"] != "http.disconnect":
        pass
