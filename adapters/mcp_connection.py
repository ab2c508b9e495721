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

import enum
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import IO, Any, Literal

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import MCP_SESSION_ID, streamable_http_client
from mcp.shared.exceptions import MCPError

from adapters.http_keepalive import KeepAliveClient
from adapters.mcp_targets import StdioTarget, Target, describe, is_disconnect, session_expired
from workbench.core import WorkbenchError, first_error
from workbench.tasks import spawn_detached

logger = logging.getLogger("workbench.mcp")

# StdioTarget, is_disconnect and session_expired live in adapters/mcp_targets.py; they are named here
# too because tests/adapters/test_mcp_connection_states.py imports them from this module.
__all__ = ["Connection", "ConnectionState", "ServerUnavailable", "StdioTarget", "is_disconnect", "session_expired"]

_STDERR_TAIL_BYTES = 4096
_STDERR_TAIL_LINES = 8
_STABLE_AFTER = 5.0  # a connection that lived this long resets the backoff when it drops
_STOP_GRACE = 10.0  # stdio_client itself bounds a child's shutdown to ~6 s (stdin close, TERM, KILL)


class ServerUnavailable(WorkbenchError):
    """The server is not connected (down, backing off, or stopped); the message says what to do."""


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


class ConnectionState(enum.Enum):
    """Where a connection is in its life; only `Connection._transition` moves it."""

    IDLE = "idle"  # not connected yet (new, or reopened after CLOSED)
    CONNECTING = "connecting"  # an owner task is doing the handshake
    UP = "up"  # connected: `client()` hands out the live client
    DOWN = "down"  # lost or failed; the next caller reconnects once the backoff allows
    CLOSED = "closed"  # closed on purpose; `reopen()` allows connecting again


HealthState = Literal["up", "down", "starting", "stopped"]

_HEALTH: dict[ConnectionState, HealthState] = {
    ConnectionState.IDLE: "down",
    ConnectionState.CONNECTING: "starting",
    ConnectionState.UP: "up",
    ConnectionState.DOWN: "down",
    ConnectionState.CLOSED: "stopped",
}


@dataclass(frozen=True)
class _Outcome:
    """What an owner task reports to the caller waiting for it to connect."""

    client: Client | None = None
    error: BaseException | None = None


@dataclass
class _Owner:
    """The task that holds one connection's `async with Client(...)`, and how to reach it."""

    wake: anyio.Event = field(default_factory=anyio.Event)  # set: close the client and end
    ready: anyio.Event = field(default_factory=anyio.Event)  # set once `outcome` is known
    done: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    outcome: _Outcome | None = None


class _Backoff:
    """When the next connect may be tried. After a connection that lived, at once; after a
    failed connect, or a server that keeps dying soon after each one (a crash loop), with
    exponentially growing delays up to `maximum`."""

    def __init__(self, base: float, maximum: float) -> None:
        self.base, self.maximum = base, maximum
        self._failures = 0
        self._next_attempt = 0.0
        self._connected_at = 0.0

    def wait(self) -> float:
        """Seconds until a connect is allowed (≤ 0: now)."""
        return self._next_attempt - time.monotonic()

    def allow_now(self) -> None:
        self._next_attempt = time.monotonic()

    def reset(self) -> None:
        self._next_attempt = 0.0

    def connected(self) -> None:
        self._connected_at = time.monotonic()

    def dropped(self) -> None:
        now = time.monotonic()
        if now - self._connected_at >= _STABLE_AFTER:
            self._failures = 0
        self._next_attempt = now + (0.0 if self._failures == 0 else self._delay())
        self._failures += 1

    def failed(self) -> None:
        self._failures += 1
        self._next_attempt = time.monotonic() + self._delay()

    def _delay(self) -> float:
        return min(self.maximum, self.base * 2.0 ** max(0, self._failures - 1))


class Connection:
    """Keeps one `Client` to one server alive on demand. `client()` hands out the live
    client (connecting first when needed); `lost()` marks it dead; `close()` ends it."""

    def __init__(
        self,
        name: str,
        target: Target,
        make_client: Callable[[Any], Client],
        on_connected: Callable[[Client], Awaitable[None]],
        serve: Callable[[Client, anyio.Event], Coroutine[Any, Any, None]],
        *,
        connect_timeout: float = 30.0,
        backoff: tuple[float, float] = (0.5, 30.0),
        on_up_or_down: Callable[[], object] | None = None,
        on_refused: Callable[[], bool] | None = None,
    ) -> None:
        self.name = name
        # The server answered the handshake with a protocol error; True: try again at once (the
        # owner switched what it offers, e.g. from the 2025 handshake to negotiating).
        self._on_refused = on_refused
        self.target = target
        self.connect_timeout = connect_timeout
        self._make_client = make_client
        self._on_connected = on_connected
        # Runs in the owner task while connected (e.g. a 2026 listen stream); it sets the
        # event once it is in place, so nothing the server announces after connect is missed.
        self._serve = serve
        self._on_up_or_down = on_up_or_down
        self._state = ConnectionState.IDLE
        self._has_been_up = False
        self._client: Client | None = None  # set exactly while UP
        self.last_error: str | None = None
        self._backoff = _Backoff(*backoff)
        self._lock = anyio.Lock()
        self._owner: _Owner | None = None
        self._stderr: IO[str] | None = None
        self.http_session_id: str | None = None
        """The `Mcp-Session-Id` the live streamable-HTTP connection sends (a 2025-era session), as the
        SDK's transport last sent it: the upstream lane (`adapters.mcp_lane`) sends the same."""

    # -- public -----------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def health_state(self) -> HealthState:
        """The state as `Health` spells it."""
        return _HEALTH[self._state]

    @property
    def live(self) -> Client | None:
        """The connected client, without connecting."""
        return self._client

    async def client(self) -> Client:
        """The connected client; connects (or reconnects) first when allowed, else raises
        `ServerUnavailable` at once."""
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is not None:
                return self._client
            if self._state is ConnectionState.CLOSED:
                raise ServerUnavailable(f"MCP server {self.name!r} is stopped; start the workbench again to use it")
            wait = self._backoff.wait()
            if wait > 0:
                raise ServerUnavailable(
                    f"MCP server {self.name!r} is down ({self.last_error}); "
                    f"the next reconnect attempt is in {wait:.1f} s"
                )
            return await self._connect()

    async def lost(self, error: BaseException | str, *, reconnect_now: bool = False) -> None:
        """A call found the connection dead: drop it now; the next call reconnects.
        `reconnect_now` skips the crash-loop backoff (the server is known to be fine)."""
        if self._state is not ConnectionState.UP:
            return
        self._dropped(error if isinstance(error, str) else describe(error))
        if reconnect_now:
            self._backoff.allow_now()
        await self._stop_owner(wait=False)

    async def close(self) -> None:
        self._transition(ConnectionState.CLOSED)
        await self._stop_owner(wait=True)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def reopen(self) -> None:
        """Allow connecting again after `close()` (a workbench may be started twice)."""
        if self._state is ConnectionState.CLOSED:
            self._transition(ConnectionState.IDLE)
            self._backoff.reset()

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

    # -- state --------------------------------------------------------------------------------

    def _transition(self, new: ConnectionState, *, client: Client | None = None, error: str | None = None) -> None:
        """The one place the state changes (and the client with it) and listeners hear of it."""
        old, self._state = self._state, new
        self._client = client if new is ConnectionState.UP else None
        if new is ConnectionState.UP:
            self.last_error = None
        elif error is not None:
            self.last_error = error
        # Going down, and coming back, changes which tools exist; the first connect and
        # closing on purpose do not.
        flipped = (old is ConnectionState.UP) != (new is ConnectionState.UP) and new is not ConnectionState.CLOSED
        if flipped and self._on_up_or_down is not None and (new is not ConnectionState.UP or self._has_been_up):
            self._on_up_or_down()
        self._has_been_up = self._has_been_up or new is ConnectionState.UP

    def _with_stderr(self, reason: str) -> str:
        tail = self.stderr_tail()
        return reason + (f"; server stderr:\n{tail}" if tail else "")

    def _dropped(self, reason: str) -> None:
        """A live connection ended. The first reconnect is immediate; a crash loop backs off."""
        self._transition(ConnectionState.DOWN, error=self._with_stderr(reason))
        self._backoff.dropped()

    def _failed(self, reason: str) -> Client:
        self._transition(ConnectionState.DOWN, error=self._with_stderr(reason))
        self._backoff.failed()
        raise ServerUnavailable(f"cannot connect to MCP server {self.name!r} ({self.target!r}): {self.last_error}")

    # -- owner task ---------------------------------------------------------------------------

    async def _connect(self) -> Client:
        self._transition(ConnectionState.CONNECTING)
        owner = self._owner = _Owner()

        async def own() -> None:
            try:
                with owner.scope:
                    await self._own(owner)
            except BaseException as e:  # noqa: BLE001 - the owner must never die silently
                if owner.outcome is None:
                    owner.outcome = _Outcome(error=e)
            finally:
                if self._owner is owner and self._state is ConnectionState.UP:  # still current: it has ended
                    self._dropped("the server closed the connection")
                owner.ready.set()
                owner.done.set()

        spawn_detached(own)  # the connection outlives the task that opened it
        try:
            with anyio.move_on_after(self.connect_timeout) as waited:
                await owner.ready.wait()
        except BaseException:  # the caller was cancelled mid-connect: do not leave a half-open owner
            owner.scope.cancel()
            self._transition(ConnectionState.DOWN, error="connecting was cancelled")
            raise
        if waited.cancelled_caught:
            owner.scope.cancel()
            with anyio.move_on_after(_STOP_GRACE):
                await owner.done.wait()
            return self._failed(f"no answer to the MCP handshake within {self.connect_timeout:g} s")
        if self._state is ConnectionState.CLOSED:  # closed while connecting: the owner is already winding down
            raise ServerUnavailable(f"MCP server {self.name!r} was stopped while connecting")
        outcome = owner.outcome or _Outcome()
        if outcome.client is None and _refused(outcome.error) and self._on_refused is not None and self._on_refused():
            return await self._connect()
        if outcome.client is None:
            return self._failed(describe(outcome.error) if outcome.error is not None else "connection ended at once")
        self._transition(ConnectionState.UP, client=outcome.client)
        self._backoff.connected()
        return outcome.client

    async def _own(self, owner: _Owner) -> None:
        closed = anyio.Event()
        async with self._transport(closed) as transport:
            async with self._make_client(transport) as client:
                await self._on_connected(client)
                async with anyio.create_task_group() as tg:
                    serving = anyio.Event()
                    tg.start_soon(self._serve, client, serving)
                    tg.start_soon(_set_when, closed, owner.wake)
                    with anyio.move_on_after(min(5.0, self.connect_timeout)):  # a server slow to ack is still usable
                        await serving.wait()
                    owner.outcome = _Outcome(client=client)
                    owner.ready.set()
                    await owner.wake.wait()
                    tg.cancel_scope.cancel()

    @asynccontextmanager
    async def _transport(self, closed: anyio.Event) -> AsyncIterator[Any]:
        target = self.target
        if isinstance(target, StdioTarget):
            if self._stderr is not None:
                self._stderr.close()
            self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
            params = StdioServerParameters(command=target.command, args=list(target.args), env=target.env,
                                           cwd=target.cwd)
            async with stdio_client(params, errlog=self._stderr) as (read, write):
                yield _WatchedTransport(_WatchedReadStream(read, closed), write)
            return
        headers = dict(target.headers)
        if target.bearer_token:
            headers["Authorization"] = f"Bearer {target.bearer_token}"
        if target.sse:
            async with sse_client(target.url, headers=headers, timeout=self.connect_timeout,
                                  auth=target.auth) as (read, write):
                yield _WatchedTransport(_WatchedReadStream(read, closed), write)
            return
        timeout = httpx2.Timeout(self.connect_timeout, read=300.0)
        self.http_session_id = None
        noted = False

        async def note_session(request: httpx2.Request) -> None:
            # Once per transport (the SDK takes the id from the initialize answer and keeps it): a
            # closing transport's DELETE must not overwrite the id of the connection that replaced it.
            nonlocal noted
            if not noted and (session_id := request.headers.get(MCP_SESSION_ID)) is not None:
                self.http_session_id, noted = session_id, True

        async with KeepAliveClient(headers=headers, timeout=timeout, auth=target.auth,
                                   event_hooks={"request": [note_session]}) as http:
            async with streamable_http_client(target.url, http_client=http) as (read, write):
                yield _WatchedTransport(_WatchedReadStream(read, closed), write)

    async def _stop_owner(self, *, wait: bool) -> None:
        owner, self._owner = self._owner, None  # no longer current: its end is not a drop
        if owner is None:
            return
        owner.wake.set()
        if wait:
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(_STOP_GRACE) as waited:
                    await owner.done.wait()
                if waited.cancelled_caught:  # a wedged transport: cut it
                    owner.scope.cancel()
                    with anyio.move_on_after(2):
                        await owner.done.wait()


class _WatchedTransport:
    """A ready-made `(read, write)` pair presented as the async context manager `Client` expects."""

    def __init__(self, read: Any, write: Any) -> None:
        self.streams = (read, write)

    async def __aenter__(self) -> tuple[Any, Any]:
        return self.streams

    async def __aexit__(self, *exc: object) -> None:
        return None


def _refused(error: BaseException | None) -> bool:
    """The server answered, with a protocol error (not a transport failure)."""
    return error is not None and isinstance(first_error(error), MCPError) and not is_disconnect(error)


async def _set_when(source: anyio.Event, target: anyio.Event) -> None:
    await source.wait()
    target.set()

