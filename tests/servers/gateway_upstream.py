"""An upstream MCP server for the gateway tests, keeping per-session state where the 2025 era
has it: resource subscriptions (updates sent only to the sessions that subscribed), the log
level each session set, a value each session stored — plus completion for a prompt and a
resource template, logging tools, and list-changed triggers. Subscriptions reach 2026-07-28
clients through `subscriptions/listen` as well.

`python gateway_upstream.py PORT` serves streamable HTTP on 127.0.0.1:PORT.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import mcp.types as mt
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resolve import Elicit, ListRoots, Resolve, Sample
from pydantic import BaseModel

mcp = MCPServer("upstream", version="1.0.0")
SUBSCRIBERS: dict[str, list[Connection]] = {}
LEVELS: dict[int, str] = {}
STORED: dict[int, str] = {}


def _key(ctx: Context) -> int:
    return id(ctx.request_context.session._connection)  # one legacy session, one connection


@mcp.tool(description="Log one line at each of debug, info and warning.")
async def chatty(ctx: Context) -> str:
    await ctx.debug("debug line")
    await ctx.info("info line")
    await ctx.warning("warning line")
    return "logged"


@mcp.tool(description="The log level this session set upstream.")
def my_level(ctx: Context) -> str:
    return LEVELS.get(_key(ctx), "<unset>")


@mcp.tool(description="Store a value in this upstream session.")
def store(value: str, ctx: Context) -> str:
    STORED[_key(ctx)] = value
    return value


@mcp.tool(description="The value this upstream session stored.")
def stored(ctx: Context) -> str:
    return STORED.get(_key(ctx), "<none>")


@mcp.tool(description="How many sessions are subscribed to the URI.")
def subscribers(uri: str) -> int:
    return len(SUBSCRIBERS.get(uri, []))


@mcp.tool(description="Change a resource: its subscribers hear of it.")
async def touch(uri: str, ctx: Context) -> str:
    for connection in list(SUBSCRIBERS.get(uri, [])):
        await connection.send_resource_updated(uri)  # best effort: a gone connection drops it
    await ctx.notify_resource_updated(uri)
    return uri


@mcp.tool(description="Add a prompt and tell clients the prompt and resource lists changed.")
async def grow(ctx: Context) -> str:
    @mcp.prompt(name="fresh", description="Appeared later.")
    def fresh() -> str:
        return "fresh"

    await ctx.notify_prompts_changed()
    await ctx.notify_resources_changed()
    try:
        await ctx.session.send_prompt_list_changed()
        await ctx.session.send_resource_list_changed()
    except Exception:  # a 2026 connection has no standalone channel
        pass
    return "grown"


class Person(BaseModel):
    name: str


def ask_person() -> Elicit[Person]:
    return Elicit("Who are you?", Person)


def ask_model() -> Sample:
    return Sample([mt.SamplingMessage(role="user", content=mt.TextContent(type="text", text="2+2?"))], max_tokens=5)


def roots() -> ListRoots:
    return ListRoots()


@mcp.tool(description="Asks the user and the model in one round (either era).")
async def interview(person: Annotated[Person, Resolve(ask_person)],
                    answer: Annotated[mt.CreateMessageResult, Resolve(ask_model)]) -> str:
    said = answer.content.text if isinstance(answer.content, mt.TextContent) else "?"
    return f"{person.name} / {said}"


@mcp.tool(description="The client's roots (either era).")
async def client_roots(result: Annotated[mt.ListRootsResult, Resolve(roots)]) -> str:
    return ",".join(str(r.uri) for r in result.roots)


@mcp.tool(description="Asks the user, then the model, pushing each request (2025 era only).")
async def push_twice(ctx: Context) -> str:
    person = await ctx.elicit("Who are you?", Person)
    name = person.data.name if person.action == "accept" and person.data else "?"
    answer = await ctx.session.create_message(
        messages=[mt.SamplingMessage(role="user", content=mt.TextContent(type="text", text="2+2?"))],
        max_tokens=5, related_request_id=ctx.request_id)
    said = answer.content.text if isinstance(answer.content, mt.TextContent) else "?"
    return f"{name} / {said}"


@mcp.resource("notes://readme", description="About the notes.", mime_type="text/plain")
def readme() -> str:
    return "the notes"


@mcp.resource("notes://item/{item_id}", description="One note.")
def item(item_id: str) -> str:
    return f"note {item_id}"


@mcp.prompt(description="Greet someone.")
def greet(name: str) -> str:
    return f"Hello {name}"


@mcp.completion()
async def complete(ref: Any, argument: mt.CompletionArgument, context: mt.CompletionContext | None) -> mt.Completion:
    if isinstance(ref, mt.PromptReference) and ref.name == "greet":
        names = ["alice", "alfred", "bob"]
    elif isinstance(ref, mt.ResourceTemplateReference) and ref.uri == "notes://item/{item_id}":
        names = ["a1", "a2", "b1"]
    else:
        return mt.Completion(values=[f"unknown ref {ref}"])
    return mt.Completion(values=[n for n in names if n.startswith(argument.value)])


async def set_level(ctx: ServerRequestContext[Any, Any], params: mt.SetLevelRequestParams) -> mt.EmptyResult:
    LEVELS[id(ctx.session._connection)] = params.level
    return mt.EmptyResult()


async def subscribe(ctx: ServerRequestContext[Any, Any], params: mt.SubscribeRequestParams) -> mt.EmptyResult:
    SUBSCRIBERS.setdefault(params.uri, []).append(ctx.session._connection)
    return mt.EmptyResult()


async def unsubscribe(ctx: ServerRequestContext[Any, Any], params: mt.UnsubscribeRequestParams) -> mt.EmptyResult:
    connections = SUBSCRIBERS.get(params.uri, [])
    if ctx.session._connection in connections:
        connections.remove(ctx.session._connection)
    return mt.EmptyResult()


lowlevel = mcp._lowlevel_server  # MCPServer 2.3 has no public registration for these 2025-era methods
lowlevel.add_request_handler("logging/setLevel", mt.SetLevelRequestParams, set_level)
lowlevel.add_request_handler("resources/subscribe", mt.SubscribeRequestParams, subscribe)
lowlevel.add_request_handler("resources/unsubscribe", mt.UnsubscribeRequestParams, unsubscribe)

if __name__ == "__main__":
    mcp.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
