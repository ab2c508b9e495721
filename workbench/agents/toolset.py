"""The tools one agent sees: one or more workbenches, filtered by globs, named for OpenAI,
and called with every failure turned into a message the model can act on."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import anyio
import mcp.types as mt

from adapters.openai_tools import to_openai_tool
from workbench.agents import telemetry
from workbench.agents.messages import ToolCall, ToolCallResult
from workbench.core import CallContext, ToolNotFoundError, ToolResult, Workbench, logger
from workbench.naming import disambiguate, safe_tool_name


@dataclass(frozen=True)
class _Route:
    workbench: Workbench
    name: str


def render(result: ToolResult, limit: int | None = None) -> str:
    """A tool result as the text a model reads; non-text content is described, not dropped;
    past `limit` characters the text is cut and says so."""
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, mt.TextContent):
            parts.append(block.text)
        elif isinstance(block, (mt.ImageContent, mt.AudioContent)):
            parts.append(f"[{block.type} {block.mime_type}, {len(block.data) * 3 // 4} bytes]")
        elif isinstance(block, mt.ResourceLink):
            parts.append(f"[resource {block.uri}{' ' + block.name if block.name else ''}]")
        elif isinstance(block, mt.EmbeddedResource):
            resource = block.resource
            parts.append(resource.text if isinstance(resource, mt.TextResourceContents) else f"[resource {resource.uri}]")
    if not parts and result.structured is not None:
        parts.append(json.dumps(result.structured, ensure_ascii=False))
    text = "\n".join(parts)
    if limit is not None and len(text) > limit:
        text = text[:limit] + f"\n[… {len(text) - limit} more characters cut]"
    return text


class Toolset:
    """`Toolset([mcp_tools, sandbox], include=["sandbox__*", "github__search*"])`."""

    def __init__(self, workbenches: Workbench | Sequence[Workbench] | None, include: Sequence[str] | None = None,
                 *, tool_timeout: float | None = None, max_result_chars: int | None = None) -> None:
        if workbenches is None:
            workbenches = []
        self.workbenches = [workbenches] if isinstance(workbenches, Workbench) else list(workbenches)
        self.include = list(include) if include else None
        self.tool_timeout = tool_timeout
        self.max_result_chars = max_result_chars
        self._routes: dict[str, _Route] = {}
        self._schemas: list[dict[str, Any]] = []
        self._stale = True
        self._subscribed = False

    async def _invalidate(self) -> None:
        self._stale = True

    async def openai_tools(self) -> list[dict[str, Any]]:
        """The tools in OpenAI form, listed again only after a workbench reported a change.
        A workbench that cannot list its tools is left out this time and asked again next time."""
        if not self._subscribed:  # lazily, once: clones share one toolset and add no listeners
            self._subscribed = True
            for wb in self.workbenches:
                wb.on_tools_changed(self._invalidate)
        if self._stale:
            routes: dict[str, _Route] = {}
            schemas: list[dict[str, Any]] = []
            self._stale = False
            for index, wb in enumerate(self.workbenches):
                try:
                    specs = await wb.list_tools()
                except Exception as e:
                    logger.warning("workbench %s: cannot list tools: %s", wb.name, e)
                    self._stale = True
                    continue
                for spec in specs:
                    if self.include is not None and not any(fnmatch.fnmatchcase(spec.name, g) for g in self.include):
                        continue
                    name = disambiguate(safe_tool_name(spec.name), set(routes), f"{index}/{spec.name}")
                    routes[name] = _Route(wb, spec.name)
                    schemas.append(to_openai_tool(spec, name=name))
            self._routes, self._schemas = routes, schemas
        return self._schemas

    @property
    def names(self) -> list[str]:
        return list(self._routes)

    async def call(self, call: ToolCall, ctx: CallContext) -> ToolCallResult:
        """One call; unknown tools, malformed arguments, failures and timeouts become error results."""
        with telemetry.span(f"execute_tool {call.name}", {
            telemetry.OPERATION: "execute_tool", telemetry.TOOL_NAME: call.name, telemetry.TOOL_CALL_ID: call.id,
        }) as s:
            content, is_error = await self._call(call, ctx)
            if is_error:
                telemetry.record_error(s, content[:200])
            return ToolCallResult(call_id=call.id, name=call.name, content=content, is_error=is_error)

    async def _call(self, call: ToolCall, ctx: CallContext) -> tuple[str, bool]:
        if not self._routes:
            await self.openai_tools()
        route = self._routes.get(call.name)
        if route is None:
            return str(ToolNotFoundError(call.name, self.names)) + ". Call only the tools you were given.", True
        try:
            arguments = json.loads(call.arguments or "{}")
        except json.JSONDecodeError as e:
            return (f"the arguments for {call.name} are not valid JSON ({e.msg} at position {e.pos}); "
                    "call it again with one JSON object that matches its schema"), True
        if not isinstance(arguments, dict):
            return f"the arguments for {call.name} must be a JSON object, not {type(arguments).__name__}", True
        tool_ctx = replace(ctx.with_timeout(self.tool_timeout), trace_context=telemetry.current_carrier() or ctx.trace_context)
        try:
            with anyio.fail_after(tool_ctx.remaining()):
                result = await route.workbench.call_tool(route.name, arguments, tool_ctx)
        except TimeoutError:
            return f"{call.name} timed out after {self.tool_timeout if self.tool_timeout else 'the deadline'} s", True
        except ToolNotFoundError as e:
            return f"{e}. The tool disappeared; use another.", True
        except Exception as e:  # a broken source must not end the agent's turn
            return f"{call.name} failed: {type(e).__name__}: {e}", True
        return render(result, self.max_result_chars), result.is_error

    async def call_all(self, calls: Sequence[ToolCall], ctx: CallContext) -> list[ToolCallResult]:
        """Run the calls concurrently; results come back in the order of the calls."""
        if len(calls) == 1:
            return [await self.call(calls[0], ctx)]
        results: list[ToolCallResult | None] = [None] * len(calls)

        async def one(i: int, c: ToolCall) -> None:
            results[i] = await self.call(c, ctx)

        async with anyio.create_task_group() as tg:
            for i, c in enumerate(calls):
                tg.start_soon(one, i, c)
        return [r for r in results if r is not None]
