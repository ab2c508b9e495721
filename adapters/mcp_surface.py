"""What an MCP server offers besides tools, as `McpWorkbench` serves it: resources, resource
templates, prompts and completion; the changes the server announces (list changes, resource
updates, on a 2026 `subscriptions/listen` stream or a 2025 session's notifications); and what a
gateway's clients ask of it meanwhile (resource subscriptions, a log level), restored on reconnect.

`McpSurface` is `McpWorkbench`'s base: its methods use the connection, router, per-client sessions
and 2026 twins that `McpWorkbench` builds (declared below), so the public API stays one class.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import mcp.types as mt
from mcp import Client
from mcp.client.subscriptions import SubscriptionLost
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import (
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    ToolsListChanged,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from adapters.mcp_client_sessions import ClientSessions
from adapters.mcp_connection import Connection, ServerUnavailable
from adapters.mcp_routing import CallRouter
from adapters.mcp_subscriptions import Subscriptions
from adapters.mcp_targets import describe, is_disconnect
from workbench.core import (
    CallContext,
    CompletionRef,
    PromptNotFoundError,
    ResourceNotFoundError,
    Workbench,
    WorkbenchError,
    unstamped,
)

logger = logging.getLogger("workbench.mcp")

_T = TypeVar("_T")
_MAX_PAGES = 1000  # a paginator that never ends must not hang a listing


class McpSurface(Workbench):
    """Resources, prompts, completion, announced changes and the clients' subscriptions of one MCP
    server; `McpWorkbench` adds the connection and the tools."""

    # Built by `McpWorkbench.__init__`.
    name: str
    timeout: float | None
    _conn: Connection
    _router: CallRouter
    _clients: ClientSessions | None
    _subscriptions: Subscriptions
    _listens: bool
    _relisten: anyio.Event

    async def _twin_for(self, ctx: CallContext | None) -> Workbench | None:
        """The connection a 2026-07-28 caller's requests take instead of the shared one, if any."""
        raise NotImplementedError

    async def _on_tools_changed(self, client: Client) -> None:
        raise NotImplementedError

    # -- resources and prompts ------------------------------------------------------------------

    async def _request(self, what: str, fn: Callable[[Client], Awaitable[_T]], ctx: CallContext | None = None) -> _T:
        """One request; questions the server asks meanwhile (2026 input rounds) go to `ctx`'s caller."""
        client = await self._conn.client()
        try:
            with anyio.fail_after(self.timeout), self._router.calling(ctx or CallContext()):
                return await fn(client)
        except TimeoutError:
            raise WorkbenchError(f"MCP server {self.name!r} did not answer {what} within {self.timeout:g} s") from None
        except Exception as e:
            if is_disconnect(e):
                await self._conn.lost(e)
                raise ServerUnavailable(
                    f"MCP server {self.name!r} disconnected during {what}: {describe(e)}; "
                    "will reconnect on the next call"
                ) from None
            raise

    async def list_resources(self) -> list[mt.Resource]:
        return await self._request(
            "resources/list", lambda c: _all_pages(lambda cursor: c.list_resources(cursor=cursor), "resources")
        )

    async def list_resource_templates(self) -> list[mt.ResourceTemplate]:
        return await self._request(
            "resources/templates/list",
            lambda c: _all_pages(lambda cursor: c.list_resource_templates(cursor=cursor), "resource_templates"),
        )

    async def read_resource(self, uri: str, ctx: CallContext | None = None) -> mt.ReadResourceResult:
        if self._clients is not None and ctx is not None:
            return await (await self._clients.get(ctx)).read_resource(uri, ctx)
        if (twin := await self._twin_for(ctx)) is not None:
            return await twin.read_resource(uri, ctx)
        try:
            read = await self._request(f"resources/read {uri}", lambda c: c.read_resource(uri), ctx)
            return read.model_copy(update={"meta": unstamped(read.meta)})
        except MCPError as e:
            raise ResourceNotFoundError(f"MCP server {self.name!r} cannot read {uri!r}: {e.message}") from None
        except ServerUnavailable as e:  # so a composite can still try its other sources
            raise ResourceNotFoundError(str(e)) from None

    async def list_prompts(self) -> list[mt.Prompt]:
        return await self._request(
            "prompts/list", lambda c: _all_pages(lambda cursor: c.list_prompts(cursor=cursor), "prompts")
        )

    async def get_prompt(
        self, name: str, arguments: dict[str, str] | None = None, ctx: CallContext | None = None
    ) -> mt.GetPromptResult:
        if self._clients is not None and ctx is not None:
            return await (await self._clients.get(ctx)).get_prompt(name, arguments, ctx)
        if (twin := await self._twin_for(ctx)) is not None:
            return await twin.get_prompt(name, arguments, ctx)
        try:
            got = await self._request(f"prompts/get {name}", lambda c: c.get_prompt(name, arguments), ctx)
            return got.model_copy(update={"meta": unstamped(got.meta)})
        except MCPError as e:
            raise PromptNotFoundError(f"MCP server {self.name!r} cannot get prompt {name!r}: {e.message}") from None

    async def complete(
        self,
        ref: CompletionRef,
        argument: mt.CompletionArgument,
        context: mt.CompletionContext | None = None,
        ctx: CallContext | None = None,
    ) -> mt.Completion:
        if self._clients is not None and ctx is not None:
            return await (await self._clients.get(ctx)).complete(ref, argument, context, ctx)
        arguments = context.arguments if context is not None else None
        asked = {"name": argument.name, "value": argument.value}
        result = await self._request("completion/complete", lambda c: c.complete(ref, asked, arguments))
        return result.completion

    # -- what the gateway's clients asked of this server: subscriptions, log levels --------------

    async def subscribe_resource(self, uri: str, ctx: CallContext | None = None) -> None:
        if self._clients is not None and ctx is not None:
            return await (await self._clients.get(ctx)).subscribe_resource(uri, ctx)
        if self._subscriptions.add(uri, (ctx or CallContext()).session_id):
            await self._subscription_changed(uri, subscribe=True)

    async def unsubscribe_resource(self, uri: str, ctx: CallContext | None = None) -> None:
        if self._clients is not None and ctx is not None:
            return await (await self._clients.get(ctx)).unsubscribe_resource(uri, ctx)
        if self._subscriptions.remove(uri, (ctx or CallContext()).session_id):
            await self._subscription_changed(uri, subscribe=False)

    async def _subscription_changed(self, uri: str, *, subscribe: bool) -> None:
        client = self._conn.live
        if client is None:  # restored on reconnect
            return
        if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
            self._relisten.set()
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            what = "resources/subscribe" if subscribe else "resources/unsubscribe"
            await self._request(
                f"{what} {uri}", lambda c: c.subscribe_resource(uri) if subscribe else c.unsubscribe_resource(uri)
            )

    async def set_log_level(self, level: mt.LoggingLevel, ctx: CallContext | None = None) -> None:
        if self._clients is not None and ctx is not None:
            return await (await self._clients.get(ctx)).set_log_level(level, ctx)
        if not self._subscriptions.set_level((ctx or CallContext()).session_id, level):
            return
        await self._send_level()

    async def _send_level(self) -> None:
        client, level = self._conn.live, self._subscriptions.level
        if client is None or level is None or client.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return  # 2026: each call carries its caller's level instead
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await self._request("logging/setLevel", lambda c: c.set_logging_level(level))

    async def close_session(self, session_id: str) -> None:
        if self._clients is not None:
            await self._clients.close(session_id)
            return
        unwanted, level_changed = self._subscriptions.drop_session(session_id)
        for uri in unwanted:
            try:
                await self._subscription_changed(uri, subscribe=False)
            except Exception as e:  # the session is gone either way
                logger.info("MCP server %s: cannot unsubscribe %s: %s", self.name, uri, describe(e))
        if level_changed:
            try:
                await self._send_level()
            except Exception as e:
                logger.info("MCP server %s: cannot reset the log level: %s", self.name, describe(e))

    async def _restore_subscriptions(self, client: Client) -> None:
        """A new connection knows nothing of what the old one was asked: subscribe again, set
        the level again, and tell each subscriber its resource may have changed meanwhile."""
        legacy = client.protocol_version not in MODERN_PROTOCOL_VERSIONS
        uris = list(self._subscriptions.resources)
        with warnings.catch_warnings():  # resources/subscribe and logging are the 2025 era's, used on it only
            warnings.simplefilter("ignore")
            try:
                if legacy:
                    for uri in uris:
                        await client.subscribe_resource(uri)
                    if (level := self._subscriptions.level) is not None:
                        await client.set_logging_level(level)
            except Exception as e:
                logger.warning("MCP server %s: cannot restore subscriptions: %s", self.name, describe(e))
        for uri in uris:
            await self.publish(ResourceUpdated(uri))

    # -- what the server announces ------------------------------------------------------------

    async def _listen(self, client: Client, listening: anyio.Event) -> None:
        """Runs in the connection's owner task: 2026 servers announce changes on a
        `subscriptions/listen` stream (legacy ones through `_on_message`). A dropped stream
        is reopened with backoff, and the catalog refetched as events may have been missed;
        a change of the resource subscriptions reopens it with the new set."""
        if client.protocol_version not in MODERN_PROTOCOL_VERSIONS or not self._listens:
            listening.set()
            return
        delay = 1.0
        while True:
            relisten = self._relisten = anyio.Event()
            try:
                async with client.listen(
                    tools_list_changed=True, prompts_list_changed=True, resources_list_changed=True,
                    resource_subscriptions=sorted(self._subscriptions.resources),
                ) as subscription, anyio.create_task_group() as tg:
                    listening.set()
                    delay = 1.0
                    tg.start_soon(_cancel_when, relisten, tg.cancel_scope)
                    async for event in subscription:
                        await self._on_event(client, event)
                    tg.cancel_scope.cancel()
                if not relisten.is_set():
                    return  # the server closed the stream gracefully
            except SubscriptionLost:
                await anyio.sleep(delay)
                delay = min(delay * 2, 30.0)
                await self._on_tools_changed(client)
            except Exception as e:  # best effort: a server without the stream still serves tools
                logger.info("MCP server %s: no subscriptions/listen stream (%s)", self.name, describe(e))
                listening.set()
                return

    async def _on_event(self, client: Client, event: ServerEvent) -> None:
        if isinstance(event, ToolsListChanged):
            await self._on_tools_changed(client)
        else:
            await self.publish(event)

    async def _on_message(self, message: Any) -> None:
        """A legacy server's notifications on its standalone channel."""
        if isinstance(message, mt.ToolListChangedNotification):
            client = self._conn.live
            if client is not None:
                await self._on_tools_changed(client)
        elif isinstance(message, mt.ResourceUpdatedNotification):
            if message.params.uri in self._subscriptions.resources:  # an update nobody asked for goes nowhere
                await self.publish(ResourceUpdated(message.params.uri))
        elif isinstance(message, mt.ResourceListChangedNotification):
            await self.publish(ResourcesListChanged())
        elif isinstance(message, mt.PromptListChangedNotification):
            await self.publish(PromptsListChanged())


async def _cancel_when(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def _all_pages(fetch: Callable[[str | None], Awaitable[Any]], attr: str) -> list[Any]:
    items: list[Any] = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        page = await fetch(cursor)
        items.extend(getattr(page, attr))
        cursor = page.next_cursor
        if not cursor:
            return items
    raise WorkbenchError(f"listing {attr} did not end after {_MAX_PAGES} pages")
