"""The gateway's upstream fixture: an MCP server with every feature the official conformance
server suite (`@modelcontextprotocol/conformance`) asks of a server, written on the installed
`mcp` server API. Straight at it, the suite's `--suite active` and `--requirements 2026-07-28`
pass except the tasks extension (the SDK has no tasks routing); through `workbench serve` in
front of it, the same must hold — that is the contract `test_conformance_server.py` checks.

    python everything_server.py http PORT [--era both|2025|2026]   # http://127.0.0.1:PORT/mcp
    python everything_server.py stdio [--era both|2025|2026]

`--era` makes the server speak one protocol era only (see `only_era`): what a 2025-only or a
2026-only upstream looks like to the gateway. The tool, resource and prompt names and contents
are the ones the suite's scenarios look for; change them and the suite fails.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
from collections import deque
from typing import Annotated, Any, Literal

import anyio
import mcp.types as mt
import uvicorn
from everything_asks import add_input_required_tools, add_push_era_tools, elicit, elicited, in_rounds
from mcp.server import ServerRequestContext
from mcp.server.context import CallNext, HandlerResult
from mcp.server.mcpserver import Context, MCPServer, RequestStateSecurity
from mcp.server.mcpserver.prompts.base import Prompt, UserMessage
from mcp.server.runner import serve_loop
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from mcp.shared.exceptions import MCPError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from pydantic import Field

Era = Literal["both", "2025", "2026"]

# A 1x1 PNG and a tiny WAV: the suite compares the bytes it gets back with these.
PNG_1X1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
WAV_TINY = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="
# Seals the 2026 `requestState` the input-required tools hand out, so a tampered echo is refused
# (the suite's `input-required-result-tampered-state`). A fixture key, not a secret.
REQUEST_STATE_KEY = b"mcp-workbench conformance fixture request-state key"


class BoundedEventStore(EventStore):
    """Keeps the last `capacity` SSE events so a client can resume a stream (SEP-1699,
    `server-sse-polling`); older events are forgotten rather than kept forever."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._events: deque[tuple[str, int, mt.JSONRPCMessage | None]] = deque(maxlen=capacity)
        self._last_id = 0

    async def store_event(self, stream_id: str, message: mt.JSONRPCMessage | None) -> str:
        self._last_id += 1
        self._events.append((stream_id, self._last_id, message))
        return str(self._last_id)

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        after = int(last_event_id) if last_event_id.isdigit() else -1
        stream = next((s for s, i, _ in self._events if i == after), None)
        if stream is None:
            return None
        for s, i, message in list(self._events):
            if s == stream and i > after and message is not None:  # None marks a priming event
                await send_callback(EventMessage(message, str(i)))
        return stream


def only_era(era: Era) -> Any:
    """A server middleware that makes the server speak one protocol era, as a one-era upstream
    does (the SDK serves both eras on one server and has no switch for it): the other era's entry
    method (`initialize` or `server/discover`) is an unknown method, -32601, and a request stamped
    with the other era's version is refused with -32022 naming the versions spoken here."""
    supported = list(HANDSHAKE_PROTOCOL_VERSIONS if era == "2025" else MODERN_PROTOCOL_VERSIONS)
    foreign_entry = "server/discover" if era == "2025" else "initialize"

    async def refuse_other_era(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == foreign_entry:
            raise MCPError(code=mt.METHOD_NOT_FOUND, message="Method not found", data=ctx.method)
        if ctx.method != "initialize" and (ctx.protocol_version in MODERN_PROTOCOL_VERSIONS) != (era == "2026"):
            raise MCPError(
                code=mt.UNSUPPORTED_PROTOCOL_VERSION,
                message=f"this server speaks only the {era} protocol era ({', '.join(supported)})",
                data={"supported": supported, "requested": ctx.protocol_version},
            )
        return await call_next(ctx)

    return refuse_other_era


# SEP-1613: tools/list must carry these 2020-12 keywords unchanged.
SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {"address": {"$anchor": "addressDef", "type": "object",
                          "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"},
                   "contactMethod": {"type": "string", "enum": ["phone", "email"]},
                   "phone": {"type": "string"}, "email": {"type": "string"}},
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


def add_content_tools(server: MCPServer) -> None:
    @server.tool()
    def test_simple_text() -> str:
        """Returns one text block."""
        return "This is a simple text response for testing."

    @server.tool()
    def test_image_content() -> list[mt.ImageContent]:
        """Returns one image block."""
        return [mt.ImageContent(type="image", data=PNG_1X1, mime_type="image/png")]

    @server.tool()
    def test_audio_content() -> list[mt.AudioContent]:
        """Returns one audio block."""
        return [mt.AudioContent(type="audio", data=WAV_TINY, mime_type="audio/wav")]

    @server.tool()
    def test_embedded_resource() -> list[mt.EmbeddedResource]:
        """Returns one embedded text resource."""
        return [mt.EmbeddedResource(type="resource", resource=mt.TextResourceContents(
            uri="test://embedded-resource", mime_type="text/plain", text="This is an embedded resource content."))]

    @server.tool()
    def test_multiple_content_types() -> list[mt.TextContent | mt.ImageContent | mt.EmbeddedResource]:
        """Returns text, an image and an embedded resource in one result."""
        return [
            mt.TextContent(type="text", text="Multiple content types test:"),
            mt.ImageContent(type="image", data=PNG_1X1, mime_type="image/png"),
            mt.EmbeddedResource(type="resource", resource=mt.TextResourceContents(
                uri="test://mixed-content-resource", mime_type="application/json",
                text='{"test": "data", "value": 123}')),
        ]

    @server.tool()
    def test_error_handling() -> str:
        """Always fails: the result carries isError."""
        raise RuntimeError("This tool intentionally returns an error for testing")

    @server.tool(name="json_schema_2020_12_tool")
    def json_schema_2020_12_tool() -> str:
        """Lists a JSON Schema 2020-12 input schema (installed below)."""
        return "json_schema_2020_12_tool"

    # MCPServer derives the schema from the signature and offers no override (2.3).
    server._tool_manager._tools["json_schema_2020_12_tool"].parameters = SCHEMA_2020_12

    @server.tool()
    def test_x_mcp_header(region: Annotated[str, Field(
            description="Mirrored into the Mcp-Param-Region header",
            json_schema_extra={"x-mcp-header": "Region"})] = "<none>") -> str:
        """SEP-2243: the suite checks the server validates the Mcp-Param-Region header against it."""
        return f"region={region}"


def add_streaming_tools(server: MCPServer) -> None:
    @server.tool()
    async def test_tool_with_logging(ctx: Context) -> str:
        """Sends three log notifications while it runs."""
        for text in ("Tool execution started", "Tool processing data", "Tool execution completed"):
            await ctx.info(text)
            await asyncio.sleep(0.05)
        return "Tool with logging executed successfully"

    @server.tool()
    async def test_tool_with_progress(ctx: Context) -> str:
        """Reports progress 0, 50, 100 and returns the caller's progress token."""
        for step in (0, 50, 100):
            await ctx.report_progress(progress=step, total=100, message=f"Completed step {step} of 100")
            await asyncio.sleep(0.05)
        meta = ctx.request_context.meta if ctx.request_context else None
        return str(meta.get("progress_token") if meta else 0)

    @server.tool()
    async def test_reconnection(ctx: Context) -> str:
        """SEP-1699: closes its SSE stream mid-call; the client resumes and still gets the end."""
        await ctx.info("Before disconnect")
        await ctx.close_sse_stream()
        await asyncio.sleep(0.2)
        await ctx.info("After reconnect")
        return "Reconnection test completed"

    @server.tool()
    async def test_trigger_tool_change(ctx: Context) -> str:
        """Changes the tool list and announces it (subscriptions/listen, SEP-2575)."""
        server.add_tool(lambda: "dynamic", name="test_dynamic_tool", description="Here for a moment.")
        server.remove_tool("test_dynamic_tool")
        await ctx.notify_tools_changed()
        return "tool list changed"

    @server.tool()
    async def test_trigger_prompt_change(ctx: Context) -> str:
        """Changes the prompt list and announces it (subscriptions/listen, SEP-2575)."""
        server.add_prompt(Prompt.from_function(lambda: "dynamic", name="test_dynamic_prompt", description="dynamic"))
        server.remove_prompt("test_dynamic_prompt")
        await ctx.notify_prompts_changed()
        return "prompt list changed"


CONFIRM: dict[str, Any] = {"type": "object", "properties": {"confirm": {"type": "boolean"}}, "required": ["confirm"]}
NAME_AND_CONFIRM: dict[str, Any] = {"type": "object",
                                    "properties": {"name": {"type": "string"}, "confirm": {"type": "boolean"}}}
"""The forms the tasks scenarios answer (`{confirm: true}`, `{name, confirm}`)."""


def add_task_tools(server: MCPServer) -> None:
    """The tools the suite's tasks scenarios (SEP-2663) call, as ordinary tools: the fixture serves
    no tasks itself; `workbench serve` in front of it runs the long ones as tasks (`serve.background`)."""

    @server.tool()
    def greet(name: str) -> str:
        """Sync-only: greets."""
        return f"Hello, {name}!"

    states: dict[str, str] = {}
    """The last outcomes of `slow_compute` by label: whether a cancelled task's call really stopped here."""

    @server.tool()
    async def slow_compute(seconds: Annotated[float, Field(ge=0, le=600)] = 1.0, label: str = "") -> str:
        """Sleeps `seconds`, then answers."""
        while len(states) >= 100:
            del states[next(iter(states))]
        states[label] = "running"
        try:
            await anyio.sleep(seconds)
        except BaseException:
            states[label] = "cancelled"
            raise
        states[label] = "done"
        return f"computed {label or 'result'} after {seconds:g} s"

    @server.tool()
    def slow_compute_states() -> dict[str, str]:
        """What became of the latest `slow_compute` calls, by label: running, done or cancelled."""
        return dict(states)

    @server.tool()
    async def failing_job() -> str:
        """Runs about a second, then fails as a tool (isError)."""
        await anyio.sleep(1.0)
        raise RuntimeError("failing_job failed, as it always does")

    @server.tool()
    async def protocol_error_job() -> str:
        """Fails at the protocol level: a JSON-RPC error, not a tool result."""
        await anyio.sleep(0.2)
        raise MCPError(code=mt.INTERNAL_ERROR, message="protocol_error_job: internal failure", data={"job": "broken"})

    @server.tool()
    async def confirm_delete(filename: str, ctx: Context) -> str | mt.InputRequiredResult:
        """Asks the user (elicitation) to confirm deleting `filename`."""
        def step(answers: Any, state: str | None) -> str | mt.InputRequiredResult:
            if "confirm" in answers:
                return f"deleted {filename}" if elicited(answers["confirm"], "confirm") else f"kept {filename}"
            return mt.InputRequiredResult(input_requests={"confirm": elicit(f"Delete {filename}?", CONFIRM)})

        return await in_rounds(ctx, step)  # type: ignore[no-any-return]

    @server.tool()
    async def multi_input(ctx: Context) -> str | mt.InputRequiredResult:
        """Asks two questions (elicitation) at once."""
        def step(answers: Any, state: str | None) -> str | mt.InputRequiredResult:
            if "first" in answers and "second" in answers:
                return f"got {elicited(answers['first'], 'name')} and {elicited(answers['second'], 'name')}"
            return mt.InputRequiredResult(input_requests={"first": elicit("First name?", NAME_AND_CONFIRM),
                                                          "second": elicit("Second name?", NAME_AND_CONFIRM)})

        return await in_rounds(ctx, step)  # type: ignore[no-any-return]


def add_resources_and_prompts(server: MCPServer) -> None:
    @server.resource("test://static-text")
    def static_text() -> str:
        """A static text resource."""
        return "This is the content of the static text resource."

    @server.resource("test://static-binary")
    def static_binary() -> bytes:
        """A static binary resource (a PNG)."""
        return base64.b64decode(PNG_1X1)

    @server.resource("test://template/{id}/data")
    def template(id: str) -> str:
        """A resource template: the id comes back in the JSON."""
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})

    @server.resource("test://watched-resource")
    def watched() -> str:
        """A resource clients subscribe to."""
        return "Watched resource content"

    def user(content: mt.TextContent | mt.ImageContent | mt.EmbeddedResource) -> UserMessage:
        return UserMessage(role="user", content=content)

    @server.prompt()
    def test_simple_prompt() -> list[UserMessage]:
        """A prompt without arguments."""
        return [user(mt.TextContent(type="text", text="This is a simple prompt for testing."))]

    @server.prompt()
    def test_prompt_with_arguments(arg1: str, arg2: str) -> list[UserMessage]:
        """A prompt with two required arguments."""
        return [user(mt.TextContent(type="text", text=f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"))]

    @server.prompt()
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:  # noqa: N803 — the suite's name
        """A prompt that embeds the resource it is given."""
        return [
            user(mt.EmbeddedResource(type="resource", resource=mt.TextResourceContents(
                uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."))),
            user(mt.TextContent(type="text", text="Please process the embedded resource above.")),
        ]

    @server.prompt()
    def test_prompt_with_image() -> list[UserMessage]:
        """A prompt with an image."""
        return [user(mt.ImageContent(type="image", data=PNG_1X1, mime_type="image/png")),
                user(mt.TextContent(type="text", text="Please analyze the image above."))]


def add_session_methods(server: MCPServer) -> None:
    """2025-era methods MCPServer does not serve by itself: logging/setLevel and resource
    subscriptions; and completion. Subscribing to a URI this server does not serve is refused,
    and a completion names the reference it completes, so a test in front of a gateway sees
    which names and URIs reached the upstream."""

    async def set_level(ctx: ServerRequestContext[Any, Any], params: mt.SetLevelRequestParams) -> mt.EmptyResult:
        return mt.EmptyResult()

    async def known(uri: str) -> None:
        if uri not in {str(r.uri) for r in await server.list_resources()}:
            raise MCPError(code=mt.INVALID_PARAMS, message=f"no resource {uri!r} to subscribe to",
                           data={"uri": uri})

    async def subscribe(ctx: ServerRequestContext[Any, Any], params: mt.SubscribeRequestParams) -> mt.EmptyResult:
        await known(str(params.uri))
        return mt.EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext[Any, Any], params: mt.UnsubscribeRequestParams) -> mt.EmptyResult:
        await known(str(params.uri))
        return mt.EmptyResult()

    lowlevel = server._lowlevel_server  # MCPServer 2.3 has no public registration for these
    lowlevel.add_request_handler("logging/setLevel", mt.SetLevelRequestParams, set_level)
    lowlevel.add_request_handler("resources/subscribe", mt.SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", mt.UnsubscribeRequestParams, unsubscribe)

    @server.completion()  # type: ignore[untyped-decorator,no-untyped-call]  # unannotated in SDK 2.3
    async def complete(ref: mt.PromptReference | mt.ResourceTemplateReference, argument: mt.CompletionArgument,
                       context: mt.CompletionContext | None) -> mt.Completion:
        target = ref.name if isinstance(ref, mt.PromptReference) else ref.uri
        return mt.Completion(values=[f"{argument.value}:{argument.name}@{target}"], total=1, has_more=False)


def build_server(era: Era = "both") -> MCPServer:
    # log_level: MCPServer configures the process's logging; INFO would log every request.
    server = MCPServer(name="mcp-conformance-test-server", version="0.1.0", log_level="WARNING",
                       request_state_security=RequestStateSecurity(keys=[REQUEST_STATE_KEY]),
                       middleware=[only_era(era)] if era != "both" else None)
    add_content_tools(server)
    add_streaming_tools(server)
    add_push_era_tools(server)
    add_input_required_tools(server)
    add_task_tools(server)
    add_resources_and_prompts(server)
    add_session_methods(server)
    return server


async def serve_stdio(server: MCPServer, era: Era) -> None:
    if era != "2025":
        await server.run_stdio_async()
        return
    # Over stdio the SDK fixes a connection's era by its first message, so a refused
    # `server/discover` probe would leave the connection modern. A 2025-only server runs the
    # handshake-only loop instead: the probe is refused and the `initialize` after it served.
    lowlevel = server._lowlevel_server
    async with stdio_server() as (read, write), lowlevel.lifespan(lowlevel) as state:
        await serve_loop(lowlevel, read, write, lifespan_state=state,
                         init_options=lowlevel.create_initialization_options())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("transport", choices=["http", "stdio"])
    parser.add_argument("port", nargs="?", type=int, default=0, help="the HTTP port (127.0.0.1 only)")
    parser.add_argument("--era", choices=["both", "2025", "2026"], default="both")
    args = parser.parse_args(argv)
    server = build_server(args.era)
    if args.transport == "stdio":
        anyio.run(serve_stdio, server, args.era)
    elif not args.port:
        parser.error("http needs a PORT")
    else:
        # retry_interval: the SSE-polling scenario expects the client told to come back soon.
        app = server.streamable_http_app(event_store=BoundedEventStore(), retry_interval=100, host="127.0.0.1")
        # h11, not uvicorn's default httptools (installed for `workbench serve`): llhttp keeps a header
        # value's trailing whitespace, and the suite's header-validation scenario sends one.
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", http="h11")


if __name__ == "__main__":
    main()
