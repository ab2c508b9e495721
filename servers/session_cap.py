"""A cap on live 2025-era HTTP sessions per identity.

The SDK's session manager caps sessions in total (`max_sessions`, 503) and expires idle ones,
but one client could still take the whole total for itself. Each session holds server memory
until DELETE or idle expiry, so one identity (a token's name or subject) may hold at most `limit`.

Counting is exact, including concurrent openings: a request that could open a session reserves
a slot before it reaches the SDK (check and reserve run without an await in between, so two
openings cannot both take the last slot). When the SDK serves its `initialize`, the server
claims the reservation for the new session id (`claim`), and the session's connection releases
it when the SDK ends the session however that happens (DELETE, idle expiry, shutdown). An
opening that never became a session gives its slot back when its request ends.
"""

from __future__ import annotations

from collections import Counter

from mcp_types import INVALID_REQUEST, ErrorData, JSONRPCError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from servers.auth import scope_identity
from servers.sessions import client_address
from workbench.core import logger

_OPENING = "workbench.opening_identity"
"""Scope key of a request holding a reservation: the identity it is reserved for."""


def _header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), None)


def opens_legacy_session(scope: Scope) -> bool:
    """Whether the SDK would admit a new 2025-era session for this request: it names no session
    and is not a (sessionless) 2026-07-28 request."""
    if scope["type"] != "http" or _header(scope, b"mcp-session-id") is not None:
        return False
    version = _header(scope, b"mcp-protocol-version")
    return version is None or version in HANDSHAKE_PROTOCOL_VERSIONS


class LegacySessionCap:
    def __init__(self, limit: int, *, idle_timeout: float) -> None:
        self.limit = limit
        self.idle_timeout = idle_timeout
        self.live: Counter[str] = Counter()
        """Per identity: sessions held plus openings in flight."""
        self._owners: dict[str, str] = {}

    def guard(self, app: ASGIApp) -> ASGIApp:
        """`app` (the SDK's endpoint) behind this cap."""
        return _Guarded(app, self)

    def identity_of(self, scope: Scope) -> str:
        return scope_identity(scope)  # as authenticated by servers.auth (its middleware runs first)

    def reserve(self, scope: Scope, identity: str) -> bool:
        """Reserve a slot for `identity` on this request; False at the cap."""
        if self.live[identity] >= self.limit:
            return False
        self.live[identity] += 1
        scope[_OPENING] = identity
        return True

    def claim(self, scope: Scope, session_id: str) -> bool:
        """The request holding a reservation opened session `session_id`: the slot is its now."""
        identity = scope.pop(_OPENING, None)
        if identity is None:
            return False
        self._owners[session_id] = identity
        return True

    def unreserve(self, scope: Scope) -> None:
        """The request has ended; a reservation it did not turn into a session is given back."""
        identity = scope.pop(_OPENING, None)
        if identity is not None:
            self._drop(identity)

    def release(self, session_id: str) -> None:
        identity = self._owners.pop(session_id, None)
        if identity is not None:
            self._drop(identity)

    def _drop(self, identity: str) -> None:
        self.live[identity] -= 1
        if self.live[identity] <= 0:
            del self.live[identity]  # identities come and go: keep the counter from growing

    def refusal(self, identity: str) -> Response:
        message = (
            f"too many open MCP sessions for this client: it holds {self.live[identity]} "
            f"(serve.max_sessions_per_identity = {self.limit}). Close sessions you no longer use "
            "(HTTP DELETE with their Mcp-Session-Id; an SDK client does this when it exits) or wait for "
            f"idle ones to expire after {self.idle_timeout:g} s without requests."
        )
        body = JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=INVALID_REQUEST, message=message))
        return Response(body.model_dump_json(by_alias=True, exclude_unset=True), status_code=429,
                        media_type="application/json")


class _Guarded:
    def __init__(self, app: ASGIApp, cap: LegacySessionCap) -> None:
        self.app = app
        self.cap = cap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not opens_legacy_session(scope):
            await self.app(scope, receive, send)
            return
        identity = self.cap.identity_of(scope)
        if not self.cap.reserve(scope, identity):
            logger.warning("session refused: per-identity cap reached",
                           extra={"identity": identity, "limit": self.cap.limit, "client": client_address(scope)})
            await self.cap.refusal(identity)(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.cap.unreserve(scope)
