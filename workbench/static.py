"""Plain Python functions as tools: schemas come from type hints via the `mcp` SDK's own
`func_metadata` (the same code `MCPServer` uses), so a function served here and a
function served by `@mcp.tool()` publish identical schemas."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any, get_type_hints

import mcp.types as mt
import pydantic
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata, func_metadata

from workbench.core import (
    CallContext,
    Tool,
    ToolNotFoundError,
    ToolResult,
    ToolSpec,
    Workbench,
    logger,
    validation_problems,
)


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return get_type_hints(fn)
    except Exception:  # unresolvable annotations: func_metadata reports them properly
        return {}


class FunctionTool(Tool):
    """A Python function (sync or async) as a tool. Sync functions run on a worker thread."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        annotations: mt.ToolAnnotations | None = None,
        structured_output: bool | None = None,
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.description = description if description is not None else inspect.cleandoc(fn.__doc__ or "")
        self.annotations = annotations
        hints = _hints(fn)
        # Parameters annotated `CallContext` are injected, never part of the schema.
        self._ctx_params = [name for name, hint in hints.items() if hint is CallContext and name != "return"]
        if hints.get("return") is ToolResult:  # the function builds its own result: no derived schema
            structured_output = False
        self._meta: FuncMetadata = func_metadata(fn, skip_names=self._ctx_params, structured_output=structured_output)
        self.input_schema = self._meta.arg_model.model_json_schema(by_alias=True)
        self.output_schema = self._meta.output_schema
        # A callable object with `async def __call__` is async too.
        call_method = fn.__call__  # type: ignore[operator]  # mypy's Callable lacks __call__; every callable has it
        self._is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call_method)

    async def run(self, arguments: dict[str, Any], ctx: CallContext) -> ToolResult:
        try:
            validated = self._meta.validate_arguments(arguments)
        except pydantic.ValidationError as e:
            return ToolResult.error(f"invalid arguments for {self.name}: {validation_problems(e)}")
        try:
            value = await self._meta.call_fn(self.fn, self._is_async, validated, {p: ctx for p in self._ctx_params})
            if isinstance(value, ToolResult):
                return value
            converted = self._meta.convert_result(value)
        except Exception as e:  # the tool failed: tell the model, keep the workbench alive
            logger.debug("tool %s raised", self.name, exc_info=True)
            return ToolResult.error(f"{self.name} failed: {type(e).__name__}: {e}")
        if not isinstance(converted, mt.CallToolResult):
            return ToolResult.error(f"{self.name} returned an unsupported result type {type(converted).__name__}")
        return ToolResult.from_mcp(converted)


def tool(
    fn: Callable[..., Any] | None = None, *, name: str | None = None, description: str | None = None
) -> Any:
    """Decorator: `@tool` or `@tool(name=..., description=...)` turns a function into a `FunctionTool`."""

    def wrap(f: Callable[..., Any]) -> FunctionTool:
        return FunctionTool(f, name=name, description=description)

    return wrap(fn) if fn is not None else wrap


class StaticWorkbench(Workbench):
    """A fixed set of tools: `StaticWorkbench([add, FunctionTool(search, name="web_search")])`."""

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = (), *, name: str = "tools") -> None:
        super().__init__()
        self.name = name
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.add(t)

    def add(self, t: Tool | Callable[..., Any]) -> Tool:
        tool_ = t if isinstance(t, Tool) else FunctionTool(t)
        if tool_.name in self._tools:
            raise ValueError(f"duplicate tool name {tool_.name!r} in workbench {self.name!r}")
        self._tools[tool_.name] = tool_
        return tool_

    async def list_tools(self) -> list[ToolSpec]:
        return [t.spec for t in self._tools.values()]

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None = None, ctx: CallContext | None = None
    ) -> ToolResult:
        t = self._tools.get(name)
        if t is None:
            raise ToolNotFoundError(name, list(self._tools))
        return await t.run(arguments or {}, ctx or CallContext())
