"""`session = "per_client"`: one upstream connection per gateway client session.

A 2025-era upstream keeps state per session — its resource subscriptions, its log level,
whatever its tools remember. Shared by every gateway client, that state would leak from one
client to the next; per client, each gateway session gets its own upstream session, opened on
its first call and closed when the gateway session ends (the server's session registry calls
`close_session`) or the gateway stops. The catalog still comes from the shared connection:
listing tools is not per-session state.

Bounded: at `max_client_sessions` open upstream sessions a new client gets a clear error
instead of another connection. A session id is bound to the identity that opened it, so an id
that leaked to someone else opens nothing of its owner's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio
from mcp.shared.subscriptions import ServerEvent, ToolsListChanged

from workbench.core import CallContext, Workbench, WorkbenchError, logger


class ClientSessionLimitError(WorkbenchError):
    pass


@dataclass
class _Opened:
    identity: str
    workbench: Workbench
    unsubscribe: Callable[[], None]


class ClientSessions:
    def __init__(self, owner: Workbench, make: Callable[[], Workbench], limit: int) -> None:
        self.owner = owner
        """Whose events a session's upstream raises, marked as that session's."""
        self.make = make
        self.limit = limit
        self._open: dict[str, _Opened] = {}
        self._opening = anyio.Lock()

    def __len__(self) -> int:
        return len(self._open)

    async def get(self, ctx: CallContext) -> Workbench:
        """The upstream connection of `ctx`'s session, opened on first use."""
        opened = self._open.get(ctx.session_id)
        if opened is None:
            async with self._opening:  # one session, one connection, however many calls race to open it
                opened = self._open.get(ctx.session_id)
                if opened is None:
                    opened = await self._start(ctx)
        if opened.identity != ctx.identity:
            raise WorkbenchError("this session belongs to another caller; open a session of your own")
        return opened.workbench

    async def _start(self, ctx: CallContext) -> _Opened:
        if len(self._open) >= self.limit:
            raise ClientSessionLimitError(
                f"MCP server {self.owner.name!r} has its limit of {self.limit} per-client upstream sessions open "
                "(max_client_sessions); retry when other clients' sessions end")
        workbench = self.make()
        await workbench.start()  # raises WorkbenchError when the server cannot be reached
        session_id = ctx.session_id

        async def relay(event: ServerEvent, _session: str | None) -> None:
            if not isinstance(event, ToolsListChanged):  # the catalog is the shared connection's
                await self.owner.publish(event, session_id)

        opened = self._open[session_id] = _Opened(ctx.identity, workbench, workbench.on_event(relay))
        return opened

    async def close(self, session_id: str) -> None:
        opened = self._open.pop(session_id, None)
        if opened is None:
            return
        opened.unsubscribe()
        with anyio.CancelScope(shield=True):
            try:
                await opened.workbench.stop()
            except Exception:
                logger.warning("closing the upstream session of %s failed", session_id, exc_info=True)

    async def close_all(self) -> None:
        for session_id in list(self._open):
            await self.close(session_id)


class ModernTwin:
    """A second connection to the same server for 2026-07-28 callers declaring one set of client
    capabilities, opened on first use. A server that cannot be reached that way is not asked
    again for a while: the shared session serves meanwhile."""

    RETRY_AFTER = 60.0

    def __init__(self, make: Callable[[], Workbench]) -> None:
        self.make = make
        self._workbench: Workbench | None = None
        self._failed_at: float | None = None
        self._opening = anyio.Lock()

    async def get(self) -> Workbench | None:
        if self._workbench is not None:
            return self._workbench
        if self._failed_at is not None and time.monotonic() - self._failed_at < self.RETRY_AFTER:
            return None
        async with self._opening:
            if self._workbench is None:
                workbench = self.make()
                try:
                    await workbench.start()
                except WorkbenchError as e:
                    logger.info("no second connection to %s (%s); the shared session serves every caller",
                                workbench.name, e)
                    self._failed_at = time.monotonic()
                    await workbench.stop()
                    return None
                self._workbench = workbench
        return self._workbench

    async def close(self) -> None:
        workbench, self._workbench = self._workbench, None
        if workbench is not None:
            with anyio.CancelScope(shield=True):
                await workbench.stop()
