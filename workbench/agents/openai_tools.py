"""Tool schemas between MCP (`ToolSpec` = `mcp.types.Tool`) and OpenAI function calling.

The input schema is passed through untouched — `$defs`/`$ref` included, which OpenAI and
every compatible server resolve — except that it is made a valid object schema when a
source left out `type` or `properties`. Names are made valid for OpenAI
(`^[a-zA-Z0-9_-]{1,64}$`); callers keep the map from the name sent to the real name.
"""

from __future__ import annotations

from typing import Any

import mcp.types as mt

from workbench.core import ToolSpec
from workbench.naming import safe_tool_name

MAX_DESCRIPTION = 1024
"""OpenAI rejects longer function descriptions."""


def _object_schema(schema: dict[str, Any] | None) -> dict[str, Any]:
    out = dict(schema or {})
    out.setdefault("type", "object")
    if out["type"] == "object":
        out.setdefault("properties", {})
    return out


def to_openai_tool(spec: ToolSpec, *, name: str | None = None) -> dict[str, Any]:
    """`{"type": "function", "function": {"name", "description", "parameters"}}` for `spec`;
    `name` overrides the (sanitised) tool name, e.g. after disambiguation."""
    description = spec.description or (spec.annotations.title if spec.annotations and spec.annotations.title else "")
    if len(description) > MAX_DESCRIPTION:
        description = description[: MAX_DESCRIPTION - 1] + "…"
    function: dict[str, Any] = {
        "name": name or safe_tool_name(spec.name),
        "parameters": _object_schema(spec.input_schema),
    }
    if description:
        function["description"] = description
    return {"type": "function", "function": function}


def from_openai_tool(tool: dict[str, Any]) -> ToolSpec:
    """The reverse: an OpenAI function tool (or a bare function object) as a `ToolSpec`."""
    function = tool.get("function", tool)
    if not isinstance(function, dict) or "name" not in function:
        raise ValueError("expected an OpenAI tool: {'type': 'function', 'function': {'name': ..., 'parameters': ...}}")
    return mt.Tool(name=function["name"], description=function.get("description"),
                   input_schema=_object_schema(function.get("parameters")))
