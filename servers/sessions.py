"""Who is calling: one `ClientSession` per MCP client, and the moment it goes.

A session id becomes `CallContext.session_id`, so per-caller state in the workbench
(a sandbox container, say) belongs to exactly one client. Where the id comes from:

- stdio: the one connection this process serves (`stdio-<random>`).
- 2025-11-25 HTTP: the transport's `Mcp-Session-Id` (`http-<id>`); the SDK ends the
  session on DELETE or after `session_idle_timeout`, and we close it then.
- 2026-07-28 HTTP is stateless, so the session comes from the request: a hash of the
  authenticated identity and of an optional `Workbench-Session` header (`client-<hash>`).
  Namespaced by identity, a header value names a session of the caller's own, never
  another's. Without the header, one identity's sessionless clients share one session
  (a stateless request has no connection to tell them apart; the TCP connection would not
  do: keep-alive drops it between calls); a client that wants a sandbox of its own sends
  a unique value. These sessions end after `session_idle_timeout` without calls.
"""

from __future__ import annotations

import functools
import hashlib
import time
from dataclasses import dataclass, field

import anyio
from starlette.types import Scope

from workbench.core import Workbench, WorkbenchError, logger


@dataclass
class ClientSession:
    id: str
    stateless: bool
    """Ended by our idle reaper (True) or by its transport connection closing (False)."""
    active_calls: int = 0
    last_seen: float = field(default_factory=time.monotonic)


STDIO_IDENTITY = "stdio"
"""The one client of a stdio server: whoever started the process."""
ANONYMOUS_IDENTITY = "anonymous"


def client_address(scope: Scope) -> str:
    """`host:port` of an HTTP request's peer, for log lines about refused requests."""
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown"


@functools.lru_cache(maxsize=4096)  # asked on every call; bounded, as both parts come from clients
def stateless_session_id(identity: str, header: str | None) -> str:
    """A stable id for a sessionless HTTP client, namespaced by its identity: two identities
    sending the same `Workbench-Session` value get two sessions, never one."""
    if identity == ANONYMOUS_IDENTITY and not header:
        return "client-anonymous"
    # Length-prefixed, so no (identity, header) pair can spell another pair's input.
    digest = hashlib.sha256(f"{len(identity)}:{identity}\0{header or ''}".encode()).hexdigest()[:24]
    return f"client-{digest}"


class SessionLimitError(WorkbenchError):
    """A new session would pass a cap; the message names it and says what to do."""


class SessionRegistry:
    def __init__(self, workbench: Workbench, idle_timeout: float, max_stateless: int | None = None) -> None:
        self.workbench = workbench
        self.idle_timeout = idle_timeout
        self.max_stateless = max_stateless
        """Live stateless sessions at most: their ids come from request headers, so a client could mint
        them without end (2025-era sessions are capped by the SDK's `max_sessions`)."""
        self.sessions: dict[str, ClientSession] = {}

    def touch(self, session_id: str, *, stateless: bool) -> ClientSession:
        session = self.sessions.get(session_id)
        if session is None:
            if stateless and self.max_stateless is not None and sum(
                    1 for s in self.sessions.values() if s.stateless) >= self.max_stateless:
                raise SessionLimitError(
                    f"the server holds its limit of {self.max_stateless} client sessions (serve.max_sessions); reuse "
                    f"your Workbench-Session value, or retry after idle ones expire ({self.idle_timeout:g} s)")
            session = self.sessions[session_id] = ClientSession(session_id, stateless)
            logger.info("session opened", extra={"session": session_id})
        session.last_seen = time.monotonic()
        return session

    async def close(self, session_id: str) -> None:
        if self.sessions.pop(session_id, None) is None:
            return
        logger.info("session closed", extra={"session": session_id})
        with anyio.CancelScope(shield=True):  # a disconnect must not leave a container behind
            try:
                await self.workbench.close_session(session_id)
            except Exception:
                logger.exception("closing session %s failed", session_id)

    async def close_all(self) -> None:
        for session_id in list(self.sessions):
            await self.close(session_id)

    async def reap_idle(self, *, every: float | None = None) -> None:
        """Forever: close stateless sessions with no call running for `idle_timeout` seconds."""
        period = every if every is not None else max(0.05, min(30.0, self.idle_timeout / 4))
        while True:
            await anyio.sleep(period)
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if session.stateless and session.active_calls == 0 and now - session.last_seen > self.idle_timeout:
                    await self.close(session.id)
