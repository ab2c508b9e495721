"""A small MCP server bundled with the examples: a few tools, a resource and a prompt.

Run over stdio (`python examples/servers/demo_server.py`) or streamable HTTP
(`python examples/servers/demo_server.py --http --port 8931`).
"""

from __future__ import annotations

import argparse
import datetime as dt

import anyio
from pydantic import BaseModel

from mcp.server.mcpserver import Context, MCPServer

mcp = MCPServer("demo", version="0.1.0", instructions="Arithmetic, text and clock tools for trying mcp-workbench.")


class Sum(BaseModel):
    total: float


@mcp.tool(description="Add two numbers.")
def add(a: float, b: float) -> Sum:
    return Sum(total=a + b)


@mcp.tool(description="Echo the message back unchanged.")
def echo(message: str) -> str:
    return message


@mcp.tool(description="Count words and characters of a text.")
def word_count(text: str) -> dict[str, int]:
    return {"words": len(text.split()), "characters": len(text)}


@mcp.tool(description="The current UTC time in ISO 8601.")
def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@mcp.tool(description="Sleep for the given seconds, reporting progress every step.")
async def countdown(seconds: int, ctx: Context) -> str:
    for i in range(seconds):
        await ctx.report_progress(i, seconds, f"{seconds - i} s left")
        await anyio.sleep(1)
    await ctx.report_progress(seconds, seconds, "done")
    return f"waited {seconds} s"


@mcp.resource("demo://readme", description="What this server offers.", mime_type="text/plain")
def readme() -> str:
    return "The demo server: add, echo, word_count, utc_now, countdown."


@mcp.prompt(description="Ask for a short summary of a text.")
def summarize(text: str) -> str:
    return f"Summarize in one sentence:\n\n{text}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8931)
    args = parser.parse_args()
    if args.http:
        mcp.run("streamable-http", host=args.host, port=args.port)
    else:
        mcp.run()


if __name__ == "__main__":
    main()
