"""`WorkbenchWrapper`: a workbench in front of another, forwarding everything it does not change.

Like Starlette's middleware: a wrapper subclass overrides what it shapes (the catalog,
extra tools) and inherits the rest. A wrapper is a view: it does not start or stop the
workbench it wraps — whoever made that workbench owns its lifecycle, so one source can
sit behind several views (the agents' catalog and the served one) and start once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mcp.types as mt

from workbench.core import CallContext, CompletionRef, EventCallback, Health, ToolResult, ToolSpec, Workbench


class WorkbenchWrapper(Workbench):
    def __init__(self, inner: Workbench) -> None:
        super().__init__()
        self.inner = inner
        self.name = inner.name

    async def list_tools(self) -> list[ToolSpec]:
        return await self.inner.list_tools()

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None = None, ctx: CallContext | None = None
    ) -> ToolResult:
        return await self.inner.call_tool(name, arguments, ctx)

    async def list_resources(self) -> list[mt.Resource]:
        return await self.inner.list_resources()

    async def list_resource_templates(self) -> list[mt.ResourceTemplate]:
        return await self.inner.list_resource_templates()

    async def read_resource(self, uri: str, ctx: CallContext | None = None) -> mt.ReadResourceResult:
        return await self.inner.read_resource(uri, ctx)

    async def list_prompts(self) -> list[mt.Prompt]:
        return await self.inner.list_prompts()

    async def get_prompt(
        self, name: str, arguments: dict[str, str] | None = None, ctx: CallContext | None = None
    ) -> mt.GetPromptResult:
        return await self.inner.get_prompt(name, arguments, ctx)

    async def complete(
        self,
        ref: CompletionRef,
        argument: mt.CompletionArgument,
        context: mt.CompletionContext | None = None,
        ctx: CallContext | None = None,
    ) -> mt.Completion:
        return await self.inner.complete(ref, argument, context, ctx)

    async def subscribe_resource(self, uri: str, ctx: CallContext | None = None) -> None:
        await self.inner.subscribe_resource(uri, ctx)

    async def unsubscribe_resource(self, uri: str, ctx: CallContext | None = None) -> None:
        await self.inner.unsubscribe_resource(uri, ctx)

    async def set_log_level(self, level: mt.LoggingLevel, ctx: CallContext | None = None) -> None:
        await self.inner.set_log_level(level, ctx)

    def health(self) -> Health:
        return self.inner.health()

    def health_by_source(self) -> dict[str, Health]:
        return self.inner.health_by_source()

    def down_source(self, name: str) -> tuple[str, Health] | None:
        return self.inner.down_source(name)

    async def close_session(self, session_id: str) -> None:
        await self.inner.close_session(session_id)

    def on_event(self, callback: EventCallback) -> Callable[[], None]:
        # Listeners hear the inner workbench itself: a view has no events of its own to keep.
        return self.inner.on_event(callback)
