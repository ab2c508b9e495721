"""The tools one agent sees: one or more workbenches merged and filtered by the core's
composite, rendered for OpenAI, and called with every failure turned into a message the
model can act on."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import anyio
import mcp.types as mt

from workbench.agents import telemetry
from workbench.agents.messages import ToolCall, ToolCallResult
from workbench.agents.openai_tools import to_openai_tool
from workbench.composite import Catalog, CompositeWorkbench, Mount
from workbench.core import CallContext, ToolNotFoundError, ToolResult, Workbench


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
            if isinstance(resource, mt.TextResourceContents):
                parts.append(resource.text)
            else:
                parts.append(f"[resource {resource.uri}]")
    if not parts and result.structured is not None:
        parts.append(json.dumps(result.structured, ensure_ascii=False))
    text = "\n".join(parts)
    if limit is not None and len(text) > limit:
        text = text[:limit] + f"\n[… {len(text) - limit} more characters cut]"
    return text


class Toolset:
    """`Toolset([mcp_tools, sandbox], include=["sandbox__*", "github__search*"])`.

    The workbenches merged by a `CompositeWorkbench` (names made safe for OpenAI, clashes
    suffixed, a workbench that cannot list asked again next turn), rendered as OpenAI tools."""

    def __init__(self, workbenches: Workbench | Sequence[Workbench] | None, include: Sequence[str] | None = None,
                 *, tool_timeout: float | None = None, max_result_chars: int | None = None) -> None:
        if workbenches is None:
            workbenches = []
        self.workbenches = [workbenches] if isinstance(workbenches, Workbench) else list(workbenches)
        self.include = list(include) if include else None
        self.tool_timeout = tool_timeout
        self.max_result_chars = max_result_chars
        # Keyed by position: a clashing name's suffix hashes "index/tool", as it always has.
        self.workbench = CompositeWorkbench(
            {str(i): Mount(wb, prefix="", include=self.include or ["*"]) for i, wb in enumerate(self.workbenches)},
            name="toolset",
        )
        self._rendered: tuple[Catalog, list[dict[str, Any]]] = (Catalog(), [])

    async def openai_tools(self) -> list[dict[str, Any]]:
        """The tools in OpenAI form, rendered again only when the catalog is a new one."""
        specs = await self.workbench.list_tools()
        if self._rendered[0] is not self.workbench.catalog:
            self._rendered = (self.workbench.catalog, [to_openai_tool(spec, name=spec.name) for spec in specs])
        return self._rendered[1]

    @property
    def names(self) -> list[str]:
        """The names the model was last offered."""
        return list(self._rendered[0].routes)

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
        if not self.names:
            await self.openai_tools()
        if call.name not in self.names:
            return str(ToolNotFoundError(call.name, self.names)) + ". Call only the tools you were given.", True
        try:
            arguments = json.loads(call.arguments or "{}")
        except json.JSONDecodeError as e:
            return (f"the arguments for {call.name} are not valid JSON ({e.msg} at position {e.pos}); "
                    "call it again with one JSON object that matches its schema"), True
        if not isinstance(arguments, dict):
            return f"the arguments for {call.name} must be a JSON object, not {type(arguments).__name__}", True
        tool_ctx = replace(ctx.with_timeout(self.tool_timeout),
                           trace_context=telemetry.current_carrier() or ctx.trace_context)
        try:
            with anyio.fail_after(tool_ctx.remaining()):
                result = await self.workbench.call_tool(call.name, arguments, tool_ctx)
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
