"""One MCP server connection, owned by one long-lived task.

The SDK's `Client` enters task groups and cancel scopes; exiting them from another
task, or out of order with another connection's, raises (the "Traps" of the SDK
notes). So each connection lives in an owner task of its own that runs
`async with Client(...)` and waits for a wake-up; calls borrow the connected
`Client` from any task, and closing just wakes the owner. A lost connection is
re-established lazily by the next caller, no sooner than a bounded exponential
backoff allows, so a dead server is not hammered.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import IO, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED

from workbench.core import WorkbenchError, first_error
from workbench.tasks import spawn_detached

logger = logging.getLogger("workbench.mcp")

State = Literal["starting", "up", "down", "stopped"]

_STDERR_TAIL_BYTES = 4096
_STDERR_TAIL_LINES = 8
_STABLE_AFTER = 5.0  # a connection that lived this long resets the backoff when it drops
_STOP_GRACE = 10.0  # stdio_client itself bounds a child's shutdown to ~6 s (stdin close, TERM, KILL)


class ServerUnavailable(WorkbenchError):
    """The server is not connected (down, backing off, or stopped); the message says what to do."""


@dataclass(frozen=True, repr=False)
class StdioTarget:
    command: str
    args: tuple[str, ...] = ()
    env: dict[str, str] | None = None
    cwd: str | None = None

    def __repr__(self) -> str:  # env values and args may hold secrets: show their shape only
        env = f", env keys={sorted(self.env)}" if self.env else ""
        return f"stdio:{self.command} (+{len(self.args)} args){env}"


@dataclass(frozen=True, repr=False)
class HttpTarget:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    bearer_token: str | None = None
    sse: bool = False

    def __repr__(self) -> str:
        parts = urlsplit(self.url)
        url = urlunsplit(parts._replace(netloc=parts.hostname or "" if parts.port is None else f"{parts.hostname}:{parts.port}"))
        auth = ", bearer token set" if self.bearer_token else ""
        headers = f", header keys={sorted(self.headers)}" if self.headers else ""
        return f"{'sse' if self.sse else 'http'}:{url}{headers}{auth}"


Target = StdioTarget | HttpTarget


def session_expired(exc: BaseException) -> bool:
    """A legacy HTTP session the server forgot (restart, idle expiry): it answered 404."""
    return isinstance(exc, MCPError) and any(s in exc.message for s in ("Session terminated", "Session not found"))


def is_disconnect(exc: BaseException) -> bool:
    """Does this error mean the connection is gone (as opposed to one request failing)?"""
    if isinstance(exc, BaseExceptionGroup):
        return any(is_disconnect(e) for e in exc.exceptions)
    if isinstance(exc, MCPError):
        return exc.code == CONNECTION_CLOSED or session_expired(exc)
    if isinstance(exc, RuntimeError) and "within an async context manager" in str(exc):
        return True  # the call raced the owner task closing the client
    if isinstance(exc, TimeoutError):  # a subclass of OSError, but a slow server is not a gone one
        return False
    return isinstance(
        exc, (httpx2.TransportError, anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError)
    )


def describe(exc: BaseException) -> str:
    """One line for people: the innermost meaningful error, no traceback."""
    exc = first_error(exc)
    if isinstance(exc, MCPError):
        return exc.message
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _WatchedReadStream:
    """Passes the transport's read stream through and flags its end: that is how a server
    that dies between calls (stdio EOF) is noticed without a request failing first."""

    def __init__(self, inner: Any, closed: anyio.Event) -> None:
        self._inner = inner
        self._closed = closed

    def __getattr__(self, name: str) -> Any:  # last_context, close, … of the SDK's streams
        return getattr(self._inner, name)

    async def receive(self) -> Any:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._closed.set()
            raise

    def __aiter__(self) -> _WatchedReadStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _WatchedReadStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Connection:
    """Keeps one `Client` to one server alive on demand. `client()` hands out the live
    client (connecting first when needed); `lost()` marks it dead; `close()` ends it."""

    def __init__(
        self,
        name: str,
        target: Target,
        make_client: Callable[[Any], Client],
        on_connected: Callable[[Client], Awaitable[None]],
        serve: Callable[[Client, anyio.Event], Awaitable[None]],
        *,
        connect_timeout: float = 30.0,
        backoff: tuple[float, float] = (0.5, 30.0),
        on_up_or_down: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.target = target
        self._make_client = make_client
        self._on_connected = on_connected
        # Runs in the owner task while connected (e.g. a 2026 listen stream); it sets the
        # event once it is in place, so nothing the server announces after connect is missed.
        self._serve = serve
        self.connect_timeout = connect_timeout
        self._backoff_base, self._backoff_max = backoff
        self._state: State = "down"
        self._was_up = False
        self._on_up_or_down = on_up_or_down
        self.last_error: str | None = None
        self._client: Client | None = None
        self._lock = anyio.Lock()
        self._failures = 0
        self._next_attempt = 0.0
        self._connected_at = 0.0
        self._wake: anyio.Event | None = None
        self._done: anyio.Event | None = None
        self._scope: anyio.CancelScope | None = None
        self._stderr: IO[str] | None = None

    # -- public -----------------------------------------------------------------------------

    async def client(self) -> Client:
        """The connected client; connects (or reconnects) first when allowed, else raises
        `ServerUnavailable` at once."""
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is not None:
                return self._client
            if self.state == "stopped":
                raise ServerUnavailable(f"MCP server {self.name!r} is stopped; start the workbench again to use it")
            wait = self._next_attempt - time.monotonic()
            if wait > 0:
                raise ServerUnavailable(
                    f"MCP server {self.name!r} is down ({self.last_error}); the next reconnect attempt is in {wait:.1f} s"
                )
            return await self._connect()

    @property
    def live(self) -> Client | None:
        """The connected client, without connecting."""
        return self._client

    async def lost(self, error: BaseException | str, *, reconnect_now: bool = False) -> None:
        """A call found the connection dead: drop it now; the next call reconnects.
        `reconnect_now` skips the crash-loop backoff (the server is known to be fine)."""
        if self._client is None:
            return
        self._client = None
        self._dropped(error if isinstance(error, str) else describe(error))
        if reconnect_now:
            self._next_attempt = time.monotonic()
        await self._stop_owner(wait=False)

    @property
    def state(self) -> State:
        return self._state

    @state.setter
    def state(self, value: State) -> None:
        # Going down, and coming back, changes which tools exist; the first connect and
        # stopping on purpose do not.
        was, self._state = self._state, value
        flipped = (was == "up") != (value == "up") and value != "stopped"
        if flipped and self._on_up_or_down is not None and (value != "up" or self._was_up):
            self._on_up_or_down()
        self._was_up = self._was_up or value == "up"

    async def close(self) -> None:
        self.state = "stopped"
        self._client = None
        await self._stop_owner(wait=True)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def reopen(self) -> None:
        """Allow connecting again after `close()` (a workbench may be started twice)."""
        if self.state == "stopped":
            self.state = "down"
            self._next_attempt = 0.0

    def stderr_tail(self) -> str:
        """The last lines the stdio server wrote to stderr (why it died, usually)."""
        if self._stderr is None:
            return ""
        try:
            self._stderr.flush()
            size = os.fstat(self._stderr.fileno()).st_size
            with open(self._stderr.fileno(), "rb", closefd=False) as raw:
                raw.seek(max(0, size - _STDERR_TAIL_BYTES))
                text = raw.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        return "\n".join(text.strip().splitlines()[-_STDERR_TAIL_LINES:])

    # -- owner task ---------------------------------------------------------------------------

    async def _connect(self) -> Client:
        self.state = "starting"
        ready = anyio.Event()
        done = anyio.Event()
        wake = anyio.Event()
        scope = anyio.CancelScope()
        outcome: dict[str, Any] = {}
        self._wake, self._done, self._scope = wake, done, scope

        async def own() -> None:
            try:
                with scope:
                    await self._own(wake, ready, outcome)
            except BaseException as e:  # noqa: BLE001 - the owner must never die silently
                outcome.setdefault("error", e)
            finally:
                if self._wake is wake:  # still the current connection: it has ended
                    self._client = None
                    if self.state == "up":
                        self._dropped(outcome.get("lost") or "the server closed the connection")
                ready.set()
                done.set()

        spawn_detached(own)  # the connection outlives the task that opened it
        try:
            with anyio.move_on_after(self.connect_timeout) as waited:
                await ready.wait()
        except BaseException:  # the caller was cancelled mid-connect: do not leave a half-open owner
            scope.cancel()
            self.state, self.last_error = "down", "connecting was cancelled"
            raise
        if waited.cancelled_caught:
            scope.cancel()
            with anyio.move_on_after(_STOP_GRACE):
                await done.wait()
            return self._failed(f"no answer to the MCP handshake within {self.connect_timeout:g} s")
        if self.state == "stopped":  # closed while connecting: the owner is already winding down
            raise ServerUnavailable(f"MCP server {self.name!r} was stopped while connecting")
        if "client" not in outcome:
            return self._failed(describe(outcome["error"]) if "error" in outcome else "connection ended at once")
        self.last_error = None
        self.state = "up"
        self._connected_at = time.monotonic()
        self._client = outcome["client"]
        return self._client

    def _with_stderr(self, reason: str) -> str:
        tail = self.stderr_tail()
        return reason + (f"; server stderr:\n{tail}" if tail else "")

    def _dropped(self, reason: str) -> None:
        """A live connection ended. The first reconnect is immediate; a server that keeps
        dying soon after each connect (a crash loop) is retried with backoff."""
        self.state = "down"
        self.last_error = self._with_stderr(reason)
        now = time.monotonic()
        if now - self._connected_at >= _STABLE_AFTER:
            self._failures = 0
        self._next_attempt = now + (0.0 if self._failures == 0 else self._delay())
        self._failures += 1

    def _delay(self) -> float:
        return min(self._backoff_max, self._backoff_base * 2 ** max(0, self._failures - 1))

    def _failed(self, reason: str) -> Client:
        self.last_error = self._with_stderr(reason)
        self.state = "down"
        self._failures += 1
        self._next_attempt = time.monotonic() + self._delay()
        raise ServerUnavailable(f"cannot connect to MCP server {self.name!r} ({self.target!r}): {self.last_error}")

    async def _own(self, wake: anyio.Event, ready: anyio.Event, outcome: dict[str, Any]) -> None:
        closed = anyio.Event()
        async with self._transport(closed) as transport:
            async with self._make_client(transport) as client:
                await self._on_connected(client)
                async with anyio.create_task_group() as tg:
                    serving = anyio.Event()
                    tg.start_soon(self._serve, client, serving)
                    tg.start_soon(_set_when, closed, wake)
                    with anyio.move_on_after(min(5.0, self.connect_timeout)):  # a server slow to ack is still usable
                        await serving.wait()
                    outcome["client"] = client
                    ready.set()
                    await wake.wait()
                    if closed.is_set():
                        outcome["lost"] = "the server closed the connection"
                    tg.cancel_scope.cancel()

    @asynccontextmanager
    async def _transport(self, closed: anyio.Event) -> AsyncIterator[Any]:
        target = self.target
        if isinstance(target, StdioTarget):
            if self._stderr is not None:
                self._stderr.close()
            self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
            params = StdioServerParameters(command=target.command, args=list(target.args), env=target.env, cwd=target.cwd)
            async with stdio_client(params, errlog=self._stderr) as (read, write):
                yield _WatchedTransport(_WatchedReadStream(read, closed), write)
            return
        headers = dict(target.headers)
        if target.bearer_token:
            headers["Authorization"] = f"Bearer {target.bearer_token}"
        if target.sse:
            async with sse_client(target.url, headers=headers, timeout=self.connect_timeout) as (read, write):
                yield _WatchedTransport(_WatchedReadStream(read, closed), write)
            return
        timeout = httpx2.Timeout(self.connect_timeout, read=300.0)
        async with httpx2.AsyncClient(headers=headers, timeout=timeout) as http:
            async with streamable_http_client(target.url, http_client=http) as (read, write):
                yield _WatchedTransport(_WatchedReadStream(read, closed), write)

    async def _stop_owner(self, *, wait: bool) -> None:
        wake, done, scope = self._wake, self._done, self._scope
        self._wake = None
        if wake is None or done is None:
            return
        wake.set()
        if wait:
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(_STOP_GRACE) as waited:
                    await done.wait()
                if waited.cancelled_caught and scope is not None:  # a wedged transport: cut it
                    scope.cancel()
                    with anyio.move_on_after(2):
                        await done.wait()


class _WatchedTransport:
    """A ready-made `(read, write)` pair presented as the async context manager `Client` expects."""

    def __init__(self, read: Any, write: Any) -> None:
        self.streams = (read, write)

    async def __aenter__(self) -> tuple[Any, Any]:
        return self.streams

    async def __aexit__(self, *exc: object) -> None:
        return None


async def _set_when(source: anyio.Event, target: anyio.Event) -> None:
    await source.wait()
    target.set()

