"""A small MCP server bundled with the examples: a few tools, a resource and a prompt.

Run over stdio (`python examples/servers/demo_server.py`) or streamable HTTP
(`python examples/servers/demo_server.py --http --port 8931`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
from typing import Annotated

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

mcp = MCPServer("demo", version="0.1.0", instructions="Arithmetic, text and clock tools for trying mcp-workbench.")


# Pydantic's lax mode turns the JSON strings "nan", "inf" and "-inf" into floats; refuse them so
# a caller gets a validation error instead of a NaN that poisons every later step (JSON Schema
# cannot say "finite": validation is where it holds). Negative operands are fine: these are
# numbers to add, not sizes or durations.
FiniteNumber = Annotated[float, Field(allow_inf_nan=False)]

MAX_COUNTDOWN_SECONDS = 600
"""One call may hold the server (and a slot of the gateway's per-client bound) only this long."""


class Sum(BaseModel):
    total: FiniteNumber


@mcp.tool(description="Add two finite numbers.")
def add(a: FiniteNumber, b: FiniteNumber) -> Sum:
    total = a + b
    if not math.isfinite(total):  # two finite floats can still overflow (1e308 + 1e308)
        raise ToolError(f"{a} + {b} overflows a 64-bit float")  # ToolError: the caller sees why
    return Sum(total=total)


@mcp.tool(description="Echo the message back unchanged.")
def echo(message: str) -> str:
    return message


@mcp.tool(description="Count words and characters of a text.")
def word_count(text: str) -> dict[str, int]:
    return {"words": len(text.split()), "characters": len(text)}


@mcp.tool(description="The current UTC time in ISO 8601.")
def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@mcp.tool(description=f"Sleep for the given seconds (0 to {MAX_COUNTDOWN_SECONDS}), reporting progress every step.")
async def countdown(seconds: Annotated[int, Field(ge=0, le=MAX_COUNTDOWN_SECONDS)], ctx: Context) -> str:
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
