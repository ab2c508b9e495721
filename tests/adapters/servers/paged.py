"""A low-level SDK server whose 250 tools come in pages of 100: a client must follow cursors."""

from __future__ import annotations

import anyio
import mcp.types as mt
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

TOOLS = [
    mt.Tool(name=f"tool_{i:03d}", description=f"Tool number {i}", input_schema={"type": "object", "properties": {}})
    for i in range(250)
]
PAGE = 100


async def list_tools(ctx: object, params: mt.PaginatedRequestParams | None) -> mt.ListToolsResult:
    start = int(params.cursor) if params is not None and params.cursor else 0
    end = start + PAGE
    return mt.ListToolsResult(tools=TOOLS[start:end], next_cursor=str(end) if end < len(TOOLS) else None)


async def call_tool(ctx: object, params: mt.CallToolRequestParams) -> mt.CallToolResult:
    return mt.CallToolResult(content=[mt.TextContent(type="text", text=f"called {params.name}")])


server = Server("paged", on_list_tools=list_tools, on_call_tool=call_tool)


async def main() -> None:
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
