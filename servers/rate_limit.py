"""`[serve.limits]`: how much one identity may ask of the server.

Two places, each where its refusal makes sense to the client:

- **Tool calls** (`calls_per_minute`, `max_concurrent_calls`) are limited in the protocol, by
  `RateLimited`, a wrapper around the served workbench: the call is a well-formed MCP request,
  and what is refused is running the tool, so the answer is an `is_error` result naming the
  limit and the seconds until a retry can succeed (also as `_meta["workbench/retry_after"]`).
  That reaches every client the same way — stdio, both HTTP eras, a model reading the result
  — which an HTTP status inside a 2025-era session's event stream could not.
- **HTTP requests** (`requests_per_minute`, every method: listings fan out to every upstream
  and cost as much as calls) are limited before dispatch, by `RequestGate` in front of the
  MCP endpoint: `429 Too Many Requests` with `Retry-After`, before the body is read, so a
  flood costs no parsing and no upstream work. Requests over stdio come from the process's
  one owner and are not limited.

Both count per identity (several sessions of one identity share its budget) with a token
bucket: `burst` calls at once, refilled at the per-minute rate. Idle identities' buckets are
dropped once there are many, so the table cannot grow without end.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mcp_types import INVALID_REQUEST, ErrorData, JSONRPCError
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from servers.audit import refusal
from servers.auth import scope_identity
from workbench.core import CallContext, ToolResult, Workbench, logger
from workbench.wrapper import WorkbenchWrapper

RETRY_AFTER = "workbench/retry_after"
"""`_meta` key of a rate-refused result: seconds until a retry can succeed."""
MAX_TRACKED = 10_000
"""Buckets kept before full (idle) ones are dropped."""


class LimitsConfig(BaseModel):
    """`[serve.limits]`, per identity; a limit left unset does not apply (today's behaviour)."""

    model_config = ConfigDict(extra="forbid")

    calls_per_minute: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    burst: int | None = Field(default=None, ge=1)
    """Calls allowed at once before the per-minute rate applies; default: one minute's worth."""
    max_concurrent_calls: int | None = Field(default=None, ge=1)
    """Tool calls one identity may have running at once, over all its sessions."""
    requests_per_minute: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """HTTP requests to the MCP endpoint (any method); over it: 429 with Retry-After."""


@dataclass
class _Bucket:
    tokens: float
    updated: float = field(default_factory=time.monotonic)


class TokenBuckets:
    """One token bucket per key: `capacity` tokens, refilled at `per_minute` a minute."""

    def __init__(self, per_minute: float, capacity: int | None = None) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(capacity if capacity is not None else max(1, math.floor(per_minute)))
        self._buckets: dict[str, _Bucket] = {}

    def _refilled(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED:
                self._forget_idle(now)
            bucket = self._buckets[key] = _Bucket(self.capacity, now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        return bucket

    def take(self, key: str) -> float:
        """Take a token for `key`: 0.0 when there was one, else the seconds until there is."""
        bucket = self._refilled(key, time.monotonic())
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items()
                    if b.tokens + (now - b.updated) * self.rate >= self.capacity]:
            del self._buckets[key]


def retry_seconds(wait: float) -> int:
    """Whole seconds for Retry-After: never 0, which would invite an immediate retry."""
    return max(1, math.ceil(wait))


def _refused(text: str, retry_after: int) -> ToolResult:
    return refusal("rate", text, **{RETRY_AFTER: retry_after})


class RateLimited(WorkbenchWrapper):
    """`inner`, with each identity's tool calls held to `limits`."""

    def __init__(self, inner: Workbench, limits: LimitsConfig) -> None:
        super().__init__(inner)
        self.limits = limits
        self.buckets = (TokenBuckets(limits.calls_per_minute, limits.burst)
                        if limits.calls_per_minute is not None else None)
        self.running: Counter[str] = Counter()

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None = None, ctx: CallContext | None = None
    ) -> ToolResult:
        cap = self.limits.max_concurrent_calls
        if cap is None and self.buckets is None:  # no limits configured: nothing to count
            return await self.inner.call_tool(name, arguments, ctx)
        identity = (ctx or CallContext()).identity
        # Concurrency first: a call refused for it should not also spend a token. Refusals are not
        # logged here: the audit line of the call records them (refused:rate).
        if cap is not None and self.running[identity] >= cap:
            return _refused(f"too many concurrent calls: {identity!r} already has {self.running[identity]} tool calls "
                            f"running (serve.limits.max_concurrent_calls = {cap}); retry when one of them finishes",
                            1)
        if self.buckets is not None:
            wait = self.buckets.take(identity)
            if wait > 0:
                seconds = retry_seconds(wait)
                return _refused(f"rate limit: {identity!r} may make {self.limits.calls_per_minute:g} tool calls a "
                                f"minute (serve.limits.calls_per_minute); retry in {seconds} s", seconds)
        self.running[identity] += 1
        try:
            return await self.inner.call_tool(name, arguments, ctx)
        finally:
            self.running[identity] -= 1
            if self.running[identity] <= 0:
                del self.running[identity]


class RequestGate:
    """ASGI: each identity's HTTP requests held to `per_minute`, refused with 429 before dispatch."""

    def __init__(self, app: ASGIApp, per_minute: float | None,
                 identity_of: Callable[[Scope], str] = scope_identity) -> None:
        self.app = app
        self.per_minute = per_minute
        self.buckets = TokenBuckets(per_minute) if per_minute is not None else None
        self.identity_of = identity_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.buckets is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        identity = self.identity_of(scope)
        wait = self.buckets.take(identity)
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        seconds = retry_seconds(wait)
        logger.info("rate limit refused a request", extra={"identity": identity, "limit": "requests"})
        message = (f"too many requests: {self.per_minute:g} a minute per client (serve.limits.requests_per_minute); "
                   f"retry in {seconds} s")
        body = JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=INVALID_REQUEST, message=message))
        await Response(body.model_dump_json(by_alias=True, exclude_unset=True), status_code=429,
                       headers={"Retry-After": str(seconds)}, media_type="application/json")(scope, receive, send)
