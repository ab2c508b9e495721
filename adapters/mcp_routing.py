"""Which call a server→client request belongs to, and who answers it.

A server may ask the client to sample its model, elicit input, or list roots, and send
log lines, while a tool call is running. A gateway relaying its own client's callbacks
passes them in the call's `CallContext`; those win for requests of that call, the
workbench-level callbacks answer the rest. The SDK runs such handlers in the calling
task's context on HTTP and on 2026 input rounds, so a context variable tells the call
apart; elsewhere (legacy stdio) it can only be told when one call is in flight.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import mcp.types as mt
from mcp.client.session import ClientRequestContext, ElicitationFnT, ListRootsFnT, SamplingFnT

from workbench.core import CallContext, LogCallback

logger = logging.getLogger("workbench.mcp")

_CURRENT_CALL: ContextVar[tuple[CallRouter, CallContext] | None] = ContextVar("mcp_current_call", default=None)

_LOG_LEVELS = {"debug": 10, "info": 20, "notice": 20, "warning": 30, "error": 40,
               "critical": 50, "alert": 50, "emergency": 50}


class CallRouter:
    """The one set of callbacks a `Client` gets, dispatching each request to its call's
    callback or the workbench's."""

    def __init__(
        self,
        server: str,
        *,
        sampling: SamplingFnT | None,
        elicitation: ElicitationFnT | None,
        list_roots: ListRootsFnT | None,
        logging_callback: LogCallback | None,
        relay: bool | frozenset[str],
    ) -> None:
        self.server = server
        self._sampling = sampling
        self._elicitation = elicitation
        self._list_roots = list_roots
        self._logging = logging_callback
        self._relay = relay
        self._in_flight: list[CallContext] = []

    def client_callbacks(self) -> dict[str, Any]:
        """`Client(...)` keyword arguments. A capability is advertised only when it can be
        answered: a workbench-level callback, or relaying from the calls (`relay`)."""
        return {
            "logging_callback": self._on_log,
            "sampling_callback": self._on_sampling if self._relays("sampling") or self._sampling else None,
            "elicitation_callback": self._on_elicitation if self._relays("elicitation") or self._elicitation else None,
            "list_roots_callback": self._on_list_roots if self._relays("roots") or self._list_roots else None,
        }

    def _relays(self, what: str) -> bool:
        """`relay` True relays everything; a set names what (a connection declaring exactly what its
        callers declared: "sampling", "elicitation", "roots")."""
        return self._relay is True or (isinstance(self._relay, frozenset) and what in self._relay)

    @contextmanager
    def calling(self, ctx: CallContext) -> Iterator[None]:
        """Mark `ctx` as the call running in this task (and in flight on this server)."""
        token = _CURRENT_CALL.set((self, ctx))
        self._in_flight.append(ctx)
        try:
            yield
        finally:
            self._in_flight.remove(ctx)
            _CURRENT_CALL.reset(token)

    def current(self) -> CallContext | None:
        current = _CURRENT_CALL.get()
        if current is not None and current[0] is self:
            return current[1]
        return self._in_flight[0] if len(self._in_flight) == 1 else None

    async def _on_sampling(self, context: ClientRequestContext, params: mt.CreateMessageRequestParams) -> Any:
        call = self.current()
        callback = (call.sampling if call else None) or self._sampling
        if callback is None:
            return _declined("sampling", "sampling_callback")
        return await callback(context, params)

    async def _on_elicitation(self, context: ClientRequestContext, params: mt.ElicitRequestParams) -> Any:
        call = self.current()
        callback = (call.elicitation if call else None) or self._elicitation
        if callback is None:
            return _declined("elicitation", "elicitation_callback")
        return await callback(context, params)

    async def _on_list_roots(self, context: ClientRequestContext) -> Any:
        call = self.current()
        callback = (call.list_roots if call else None) or self._list_roots
        if callback is None:
            return _declined("roots", "list_roots_callback")
        return await callback(context)

    async def _on_log(self, params: mt.LoggingMessageNotificationParams) -> None:
        call = self.current()
        if call is not None and call.log is not None:
            await call.log(params)
        elif self._logging is not None:
            await self._logging(params)
        else:
            logger.log(_LOG_LEVELS.get(params.level, 20), "[%s] %s", self.server, params.data)


def _declined(what: str, option: str) -> mt.ErrorData:
    return mt.ErrorData(
        code=mt.INVALID_REQUEST,
        message=f"the client cannot answer {what} requests: pass {option}= to McpWorkbench, "
        "or call with a CallContext that carries one",
    )
