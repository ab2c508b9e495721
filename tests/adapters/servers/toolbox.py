"""An SDK `MCPServer` exercising everything `McpWorkbench` must carry: structured output,
`$defs` schemas, mixed content, progress, logs, cancellation, list_changed, sampling,
elicitation, roots, a hang and a crash.

`python toolbox.py [--transport stdio|http|sse] [--port N] [--name NAME]`
"""

from __future__ import annotations

import argparse
import base64
import os
from typing import Annotated

import anyio
import mcp.types as mt
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit, ListRoots, Resolve, Sample
from pydantic import BaseModel

parser = argparse.ArgumentParser()
parser.add_argument("--transport", default="stdio", choices=["stdio", "http", "sse"])
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--name", default="toolbox")
ARGS = parser.parse_args()

mcp = MCPServer(ARGS.name, version="1.0.0")
CANCELLED: list[str] = []


class Sum(BaseModel):
    total: int


class Point(BaseModel):
    x: float
    y: float


class Shape(BaseModel):
    points: list[Point]
    label: str = ""


class Person(BaseModel):
    name: str


@mcp.tool(description="Echo the message back.")
def echo(message: str) -> str:
    return message


@mcp.tool(description="Add two integers.")
def add(a: int, b: int) -> Sum:
    return Sum(total=a + b)


@mcp.tool(description="Count a shape's points (its schema has $defs).")
def count_points(shape: Shape) -> int:
    return len(shape.points)


@mcp.tool(description="Text, image, audio and a resource link in one result.")
def mixed() -> list[mt.ContentBlock]:
    pixel = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    return [
        mt.TextContent(type="text", text="mixed"),
        mt.ImageContent(type="image", data=pixel, mime_type="image/png"),
        mt.AudioContent(type="audio", data=base64.b64encode(b"RIFF").decode(), mime_type="audio/wav"),
        mt.ResourceLink(type="resource_link", uri="toolbox://readme", name="readme"),
    ]


@mcp.tool(description="Fail on purpose.")
def fail(reason: str) -> str:
    raise ToolError(f"failed because {reason}")


@mcp.tool(description="Sleep, reporting progress and logging; records a cancellation.")
async def slow(seconds: float, tag: str, ctx: Context) -> str:
    try:
        steps = max(1, int(seconds * 10))
        for i in range(steps):
            await ctx.report_progress(i, steps, f"step {i}")
            if i == 0:
                await ctx.info(f"slow {tag} started")
            await anyio.sleep(seconds / steps)
        return f"slept {seconds}"
    except anyio.get_cancelled_exc_class():
        CANCELLED.append(tag)
        raise


@mcp.tool(description="Tags of the `slow` calls that were cancelled.")
def cancelled() -> list[str]:
    return list(CANCELLED)


@mcp.tool(description="Never return.")
async def hang() -> str:
    await anyio.sleep_forever()
    return ""


@mcp.tool(description="This server's name (set with --name).")
def whoami() -> str:
    return ARGS.name


@mcp.tool(description="The Authorization header of this request, if the transport has headers.")
def auth_header(ctx: Context) -> str:
    return (ctx.headers or {}).get("authorization", "<none>")


@mcp.tool(description="The W3C traceparent this request carried in its _meta.")
def traceparent(ctx: Context) -> str:
    return str((ctx.request_context.meta or {}).get("traceparent", "<none>"))


@mcp.tool(description="The server's process id.")
def pid() -> int:
    return os.getpid()


@mcp.tool(description="An environment variable's value.")
def getenv(key: str) -> str:
    return os.environ.get(key, "<unset>")


@mcp.tool(description="The server's working directory.")
def getcwd() -> str:
    return os.getcwd()


@mcp.tool(description="Write to stderr, then exit the process abruptly.")
def crash() -> str:
    os.write(2, b"toolbox: fatal: simulated crash\n")
    os._exit(3)


@mcp.tool(description="Register a new tool and tell clients the list changed.")
async def grow(name: str, ctx: Context) -> str:
    def fresh() -> str:
        return name

    mcp.add_tool(fresh, name=name, description=f"added at runtime: {name}")
    await ctx.notify_tools_changed()  # 2026 subscriptions/listen streams
    try:
        await ctx.session.send_tool_list_changed()  # legacy sessions
    except Exception:
        pass
    return name


def ask_person(message: str) -> Elicit[Person]:
    return Elicit(message, Person)


@mcp.tool(description="Elicit a name from the user.")
async def greet(message: str, person: Annotated[Person, Resolve(ask_person)]) -> str:
    return f"hello {person.name}"


def sample_llm(prompt: str) -> Sample:
    return Sample([mt.SamplingMessage(role="user", content=mt.TextContent(type="text", text=prompt))], max_tokens=20)


@mcp.tool(description="Ask the client's model.")
async def think(prompt: str, answer: Annotated[mt.CreateMessageResult, Resolve(sample_llm)]) -> str:
    content = answer.content
    return f"model said: {content.text if isinstance(content, mt.TextContent) else content}"


def roots() -> ListRoots:
    return ListRoots()


@mcp.tool(description="The client's roots.")
async def list_client_roots(result: Annotated[mt.ListRootsResult, Resolve(roots)]) -> list[str]:
    return [str(r.uri) for r in result.roots]


@mcp.resource("toolbox://readme", description="About this server.", mime_type="text/plain")
def readme() -> str:
    return f"{ARGS.name}: a test server"


@mcp.resource("toolbox://items/{item}", description="One item.")
def item(item: str) -> str:
    return f"item {item}"


@mcp.prompt(description="Ask for a summary.")
def summarize(text: str) -> str:
    return f"Summarize: {text}"


if __name__ == "__main__":
    if ARGS.transport == "stdio":
        mcp.run()
    elif ARGS.transport == "http":
        mcp.run("streamable-http", host="127.0.0.1", port=ARGS.port)
    else:
        mcp.run("sse", host="127.0.0.1", port=ARGS.port)
