"""The gateway's MCP surface besides tools: the handlers for resources (list, templates, read),
prompts (list, get), completion, resource subscriptions, `logging/setLevel` and the 2026
`subscriptions/listen` stream, each forwarding to the served workbench as its caller.

`SurfaceHandlers` is `WorkbenchServer`'s base, which registers these handlers with the SDK
server; they use its served workbench and its view of the caller (declared below).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar

import anyio
import mcp.types as mt
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.subscriptions import ListenHandler, ServerEvent
from mcp.shared.exceptions import MCPError

from servers.auth import scope_access
from workbench.core import CallContext, PromptNotFoundError, ResourceNotFoundError, Workbench, logger

RESOURCE_NOT_FOUND = -32002
"""MCP's error code for an unknown resource URI."""
_LEVEL_KEY = "workbench.log_level"
_SUBSCRIBED_KEY = "workbench.subscribed"
_LISTENING_SESSION: ContextVar[str | None] = ContextVar("listening_session", default=None)
R = TypeVar("R", bound=mt.Result)
T = TypeVar("T")
Ctx = ServerRequestContext[Any, Any]
"""The lowlevel handlers' request context; the server keeps no lifespan state and takes any transport request."""


def _connection(ctx: Ctx) -> Connection:
    """The request's per-client connection. mcp 2.3.0 offers it publicly only on the high-level
    `Context` (`ctx.connection`), not to lowlevel handlers and middleware: the one private read."""
    connection: Connection = ctx.session._connection
    return connection


class SessionBus:
    """The SDK's subscription bus with one addition: an event may belong to one session (a
    per-client upstream's), and then only that session's `subscriptions/listen` streams get it.
    A stream's session is the one whose listen request subscribed it."""

    def __init__(self) -> None:
        self._listeners: list[tuple[str | None, Callable[[ServerEvent], None]]] = []

    async def publish(self, event: ServerEvent, session_id: str | None = None) -> None:
        for owner, listener in list(self._listeners):
            if session_id is None or owner == session_id:
                listener(event)

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        entry = (_LISTENING_SESSION.get(), listener)
        self._listeners.append(entry)
        return lambda: self._listeners.remove(entry) if entry in self._listeners else None


class SurfaceHandlers:
    """Resources, prompts, completion, subscriptions, log levels and listen streams, as handlers."""

    # Set by `WorkbenchServer.__init__`.
    served: Workbench
    _listen: ListenHandler

    def session_id(self, ctx: Ctx) -> tuple[str, bool]:
        raise NotImplementedError

    def identity(self, ctx: Ctx) -> str:
        raise NotImplementedError

    def _relaying(self, ctx: Ctx, call: CallContext) -> CallContext:
        raise NotImplementedError

    async def _in_rounds(
        self, ctx: Ctx, params: mt.InputResponseRequestParams, call: CallContext,
        run: Callable[[], Awaitable[T]], to_wire: Callable[[T], R],
    ) -> R | mt.InputRequiredResult:
        raise NotImplementedError

    # ---- resources and prompts ---------------------------------------------------------
    async def _list_resources(self, ctx: Ctx, params: mt.PaginatedRequestParams | None) -> mt.ListResourcesResult:
        return mt.ListResourcesResult(resources=await self.served.list_resources())

    async def _list_resource_templates(
        self, ctx: Ctx, params: mt.PaginatedRequestParams | None
    ) -> mt.ListResourceTemplatesResult:
        return mt.ListResourceTemplatesResult(resource_templates=await self.served.list_resource_templates())

    async def _read_resource(
        self, ctx: Ctx, params: mt.ReadResourceRequestParams
    ) -> mt.ReadResourceResult | mt.InputRequiredResult:
        call, uri = self._caller(ctx), str(params.uri)
        try:
            if not ctx.session.can_send_request:
                return await self._in_rounds(ctx, params, call, lambda: self.served.read_resource(uri, call), _same)
            return await self.served.read_resource(uri, self._relaying(ctx, call))
        except ResourceNotFoundError as e:
            raise MCPError(RESOURCE_NOT_FOUND, str(e), {"uri": str(params.uri)}) from None

    async def _list_prompts(self, ctx: Ctx, params: mt.PaginatedRequestParams | None) -> mt.ListPromptsResult:
        return mt.ListPromptsResult(prompts=await self.served.list_prompts())

    async def _get_prompt(
        self, ctx: Ctx, params: mt.GetPromptRequestParams
    ) -> mt.GetPromptResult | mt.InputRequiredResult:
        call, name, arguments = self._caller(ctx), params.name, params.arguments
        try:
            if not ctx.session.can_send_request:
                return await self._in_rounds(ctx, params, call, lambda: self.served.get_prompt(name, arguments, call),
                                             _same)
            return await self.served.get_prompt(name, arguments, self._relaying(ctx, call))
        except PromptNotFoundError as e:
            raise MCPError(mt.INVALID_PARAMS, str(e)) from None

    # ---- completion, subscriptions, log levels --------------------------------------------
    def _caller(self, ctx: Ctx) -> CallContext:
        """Who asks: session, identity, and what their token grants (scopes, verified claims), as a
        tool call's context carries them, so what serves a read or a completion can judge by them too."""
        session_id, _ = self.session_id(ctx)
        access = scope_access(ctx.request.scope) if ctx.request is not None else None
        return CallContext(session_id=session_id, identity=self.identity(ctx),
                           scopes=frozenset(access.scopes) if access else frozenset(),
                           claims=access.claims or {} if access else {},
                           protocol_version=_connection(ctx).protocol_version)

    async def _complete(self, ctx: Ctx, params: mt.CompleteRequestParams) -> mt.CompleteResult:
        try:
            completion = await self.served.complete(params.ref, params.argument, params.context, self._caller(ctx))
        except (PromptNotFoundError, ResourceNotFoundError) as e:
            raise MCPError(mt.INVALID_PARAMS, str(e)) from None
        return mt.CompleteResult(completion=completion)

    async def _subscribe(self, ctx: Ctx, params: mt.SubscribeRequestParams) -> mt.EmptyResult:
        subscribed: set[str] = _connection(ctx).state.setdefault(_SUBSCRIBED_KEY, set())
        if params.uri not in subscribed:
            try:
                await self.served.subscribe_resource(params.uri, self._caller(ctx))
            except ResourceNotFoundError as e:
                raise MCPError(RESOURCE_NOT_FOUND, str(e), {"uri": params.uri}) from None
            except ValueError as e:  # a cap on subscriptions
                raise MCPError(mt.INVALID_REQUEST, str(e)) from None
            subscribed.add(params.uri)
        return mt.EmptyResult()

    async def _unsubscribe(self, ctx: Ctx, params: mt.UnsubscribeRequestParams) -> mt.EmptyResult:
        subscribed: set[str] = _connection(ctx).state.get(_SUBSCRIBED_KEY, set())
        if params.uri in subscribed:
            subscribed.discard(params.uri)
            await self.served.unsubscribe_resource(params.uri, self._caller(ctx))
        return mt.EmptyResult()

    async def _set_level(self, ctx: Ctx, params: mt.SetLevelRequestParams) -> mt.EmptyResult:
        _connection(ctx).state[_LEVEL_KEY] = params.level
        await self.served.set_log_level(params.level, self._caller(ctx))
        return mt.EmptyResult()

    async def _listen_stream(
        self, ctx: Ctx, params: mt.SubscriptionsListenRequestParams
    ) -> mt.SubscriptionsListenResult:
        """A 2026-07-28 `subscriptions/listen`: its resource URIs are subscribed upstream for as
        long as the stream lasts, and it hears its own session's events plus everyone's."""
        caller = self._caller(ctx)
        uris = list(dict.fromkeys(params.notifications.resource_subscriptions or ()))
        subscribed: list[str] = []
        token = _LISTENING_SESSION.set(caller.session_id)
        try:
            for uri in uris:
                try:
                    await self.served.subscribe_resource(uri, caller)
                    subscribed.append(uri)
                except (ResourceNotFoundError, ValueError) as e:
                    logger.info("listen: cannot subscribe %s: %s", uri, e)
            return await self._listen(ctx, params)
        finally:
            _LISTENING_SESSION.reset(token)
            with anyio.CancelScope(shield=True):
                for uri in subscribed:
                    try:
                        await self.served.unsubscribe_resource(uri, caller)
                    except Exception as e:  # the stream is over either way
                        logger.info("listen: cannot unsubscribe %s: %s", uri, e)


def _same(result: R) -> R:
    return result
