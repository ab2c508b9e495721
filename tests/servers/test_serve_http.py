"""A workbench served over streamable HTTP, driven by the SDK's `Client` in both protocol eras:
what goes in comes out — every content type, structured output, errors, progress, logs,
resources, prompts, trace context — and cancellation stops the work."""

from __future__ import annotations

import asyncio
import socket

import anyio
import mcp.types as mt
import pytest
from mcp.shared.exceptions import MCPError
from opentelemetry import propagate, trace
from serve_toolkit import PNG, ServeBench
from serving import http_client, serving

from servers import ServeSettings
from servers.serve import _bind

pytestmark = pytest.mark.anyio


async def test_tools_results_and_errors_round_trip(mode: str) -> None:
    async with serving(ServeBench()) as served, http_client(served.url, mode=mode) as client:
        assert client.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert {"add", "echo", "media", "slow"} <= set(tools)
        assert tools["add"].output_schema is not None and tools["add"].description == "Add two integers."

        added = await client.call_tool("add", {"a": 2, "b": 40})
        assert not added.is_error and added.structured_content == {"total": 42}

        media = await client.call_tool("media", {})
        kinds = [c.type for c in media.content]
        assert kinds == ["text", "image", "audio", "resource_link", "resource"]
        assert media.content[1].data == PNG and media.content[2].mime_type == "audio/wav"
        assert media.structured_content == {"count": 5}

        failed = await client.call_tool("fail", {"reason": "disk full"})
        assert failed.is_error and "disk full" in failed.content[0].text

        bad_args = await client.call_tool("add", {"a": "x"})
        assert bad_args.is_error and "invalid arguments" in bad_args.content[0].text

        with pytest.raises(MCPError) as unknown:
            await client.call_tool("nope", {})
        assert unknown.value.code == mt.INVALID_PARAMS and "unknown tool 'nope'" in unknown.value.message


async def test_resources_templates_and_prompts(mode: str) -> None:
    async with serving(ServeBench()) as served, http_client(served.url, mode=mode) as client:
        assert [str(r.uri) for r in (await client.list_resources()).resources] == ["demo://readme"]
        assert [t.uri_template for t in (await client.list_resource_templates()).resource_templates] == ["demo://notes/{id}"]
        read = await client.read_resource("demo://readme")
        assert read.contents[0].text == "read me"
        with pytest.raises(MCPError) as missing:
            await client.read_resource("demo://missing")
        assert missing.value.code == -32002
        assert [p.name for p in (await client.list_prompts()).prompts] == ["summarize"]
        prompt = await client.get_prompt("summarize", {"text": "abc"})
        assert prompt.messages[0].content.text == "Summarize: abc"


async def test_progress_streams_to_the_client(mode: str) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with serving(ServeBench()) as served, http_client(served.url, mode=mode) as client:
        result = await client.call_tool("slow", {"seconds": 0.2}, progress_callback=on_progress)
    assert result.content[0].text == "slept 0.2"
    assert [p for p, _, _ in seen] == [1, 2, 3, 4] and seen[-1] == (4, 4, "step 4")


async def test_log_messages_reach_the_client(mode: str) -> None:
    logs: list[mt.LoggingMessageNotificationParams] = []

    async def on_log(params: mt.LoggingMessageNotificationParams) -> None:
        logs.append(params)

    # 2026-07-28 delivers logs only to requests that opt in with a level (`log_level`).
    async with serving(ServeBench()) as served, http_client(served.url, mode=mode, logging_callback=on_log,
                                                         log_level="info") as client:
        assert (await client.call_tool("shout", {"text": "hey"})).content[0].text == "HEY"
    assert [(m.level, m.data, m.logger) for m in logs] == [("warning", "shouting hey", "shout")]


async def test_trace_context_from_meta_reaches_the_workbench(mode: str) -> None:
    # The caller's span is current, as in an instrumented client. Once a tracer provider is installed
    # in this process (Studio's tests install one), the SDK client sends a span of its own, the caller's
    # child, and the server's span comes between too: the trace id and tracestate must arrive either way
    # (test_trace_continuity checks a server with a tracer, in a process of its own).
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    carrier = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01", "tracestate": "k=v"}
    async with serving(ServeBench()) as served, http_client(served.url, mode=mode) as client:
        with trace.use_span(trace.get_current_span(propagate.extract(carrier))):
            result = await client.call_tool("whoami", {}, meta=dict(carrier))
    seen = result.structured_content["trace"]
    assert seen["traceparent"].split("-")[1] == trace_id and seen["tracestate"] == "k=v"


async def test_client_cancellation_stops_the_work(mode: str) -> None:
    bench = ServeBench()
    async with serving(bench) as served, http_client(served.url, mode=mode) as client:
        with anyio.move_on_after(0.3):
            await client.call_tool("slow", {"seconds": 5, "tag": "cancel-me"})
        with anyio.fail_after(5):
            while "cancel-me" not in bench.cancelled:
                await anyio.sleep(0.02)
        assert bench.running == set() and served.server.inflight == 0
        # the connection stays usable
        assert (await client.call_tool("echo", {"text": "still here"})).content[0].text == "still here"
    assert "cancel-me" not in bench.finished


async def test_client_that_disconnects_mid_call_leaves_nothing_running(mode: str) -> None:
    bench = ServeBench()
    async with serving(bench) as served:
        async with anyio.create_task_group() as tg:

            async def call_then_vanish() -> None:
                async with http_client(served.url, mode=mode) as client:
                    await client.call_tool("slow", {"seconds": 10, "tag": "orphan"})

            tg.start_soon(call_then_vanish)
            with anyio.fail_after(5):
                while "orphan" not in bench.running:
                    await anyio.sleep(0.02)
            tg.cancel_scope.cancel()  # the client goes away: its HTTP connections close
        with anyio.fail_after(5):
            while bench.running or served.server.inflight:
                await anyio.sleep(0.02)
        assert "orphan" in bench.cancelled and "orphan" not in bench.finished


async def test_tools_list_changed_reaches_clients_of_both_eras() -> None:
    bench = ServeBench()
    async with serving(bench) as served:
        legacy_seen = anyio.Event()

        async def on_message(message: object) -> None:
            if isinstance(message, mt.ToolListChangedNotification):
                legacy_seen.set()

        async with http_client(served.url, mode="legacy", message_handler=on_message) as legacy, \
                http_client(served.url) as modern:
            caps = legacy.server_capabilities
            assert caps is not None and caps.tools is not None and caps.tools.list_changed
            await legacy.list_tools()  # a real client lists, then waits for changes
            async with modern.listen(tools_list_changed=True) as subscription:
                bench.add(lambda_tool())
                await bench.notify_tools_changed()
                with anyio.fail_after(5):
                    event = await subscription.__anext__()
                assert type(event).__name__ == "ToolsListChanged"
            with anyio.fail_after(5):
                await legacy_seen.wait()
            assert "late" in {t.name for t in (await modern.list_tools()).tools}


def lambda_tool():  # a tool that appears after the clients connected
    from workbench import FunctionTool

    def late() -> str:
        """Arrived late."""
        return "late"

    return FunctionTool(late)


async def test_sampling_from_a_tool_is_relayed_to_the_client() -> None:
    asked: list[str] = []

    async def sampling(context: object, params: mt.CreateMessageRequestParams) -> mt.CreateMessageResult:
        asked.append(params.messages[0].content.text)
        return mt.CreateMessageResult(role="assistant", content=mt.TextContent(type="text", text="42"), model="test")

    async with serving(ServeBench()) as served, http_client(served.url, mode="legacy",
                                                         sampling_callback=sampling) as client:
        result = await client.call_tool("ask", {"question": "meaning of life?"})
    assert result.content[0].text == "42" and asked == ["meaning of life?"]


async def test_elicitation_from_a_tool_is_relayed_to_the_client() -> None:
    async def elicitation(context: object, params: mt.ElicitRequestParams) -> mt.ElicitResult:
        assert params.message == "Go ahead with deploy?"
        return mt.ElicitResult(action="accept", content={"ok": True})

    async with serving(ServeBench()) as served, http_client(served.url, mode="legacy",
                                                         elicitation_callback=elicitation) as client:
        result = await client.call_tool("confirm", {"action": "deploy"})
    assert result.content[0].text == "accept: {'ok': True}"


async def test_2026_clients_get_no_server_to_client_requests() -> None:
    async with serving(ServeBench()) as served, http_client(served.url) as client:
        assert (await client.call_tool("ask", {"question": "?"})).content[0].text == "no sampling channel"


async def test_concurrent_calls_per_client_are_bounded(mode: str) -> None:
    settings = ServeSettings(transport="http", max_concurrent_calls_per_client=2)
    async with serving(ServeBench(), settings) as served, http_client(served.url, mode=mode) as client:
        results: list[mt.CallToolResult] = []

        async def call(i: int) -> None:
            results.append(await client.call_tool("slow", {"seconds": 0.5, "tag": f"c{i}"}))

        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(call, i)
    refused = [r for r in results if r.is_error]
    assert len(refused) == 2 and "too many concurrent calls" in refused[0].content[0].text
    assert sum(not r.is_error for r in results) == 2


async def test_the_app_mounts_inside_a_users_own_starlette_app() -> None:
    from contextlib import asynccontextmanager

    from serving import free_port
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    from servers import create_app
    from servers.listener import http_listener

    bench = ServeBench()
    tools_app = create_app(bench, ServeSettings(transport="http"))

    @asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        async with bench, tools_app.router.lifespan_context(tools_app):
            yield

    async def home(request: object) -> PlainTextResponse:
        return PlainTextResponse("the user's own route")

    app = Starlette(routes=[Route("/", home), Mount("/tools", tools_app)], lifespan=lifespan)
    port = free_port()
    http = http_listener(app, ServeSettings(transport="http", port=port))
    async with anyio.create_task_group() as tg:
        tg.start_soon(http.serve)
        while not http.started:
            await anyio.sleep(0.01)
        try:
            async with http_client(f"http://127.0.0.1:{port}/tools/mcp") as client:
                assert (await client.call_tool("echo", {"text": "mounted"})).content[0].text == "mounted"
        finally:
            http.should_exit = True


async def test_sessions_are_per_client_and_stateless_ones_end_when_idle() -> None:
    bench = ServeBench()
    settings = ServeSettings(transport="http", session_idle_timeout=0.5)
    async with serving(bench, settings) as served:
        async with http_client(served.url, mode="legacy") as one, http_client(served.url, mode="legacy") as two:
            first = (await one.call_tool("whoami", {})).structured_content["session"]
            second = (await two.call_tool("whoami", {})).structured_content["session"]
            assert first != second and first.startswith("http-") and second.startswith("http-")
            assert first == (await one.call_tool("whoami", {})).structured_content["session"]

        async def session_of(header: str) -> str:
            async with http_client(served.url, headers={"Workbench-Session": header}) as client:
                return (await client.call_tool("whoami", {})).structured_content["session"]

        alice, bob = await session_of("alice"), await session_of("bob")
        assert alice != bob and alice.startswith("client-") and alice == await session_of("alice")
        with anyio.fail_after(5):  # no calls for session_idle_timeout: the workbench is told they are gone
            while not {alice, bob} <= set(bench.closed_sessions):
                await anyio.sleep(0.05)
        assert {first, second} <= set(bench.closed_sessions)  # the legacy clients deleted theirs on exit


def test_stateless_session_ids_separate_tokens_and_hide_them() -> None:
    from servers.sessions import stateless_session_id

    alice, bob = stateless_session_id("Bearer alice-token", None), stateless_session_id("Bearer bob-token", None)
    assert alice != bob  # two tokens without a session header never share a sandbox
    assert alice == stateless_session_id("Bearer alice-token", None)  # stable across requests
    bob_tab = stateless_session_id("Bearer bob-token", "tab-1")
    assert stateless_session_id("Bearer alice-token", "tab-1") not in (alice, bob_tab)
    assert "alice-token" not in alice and alice.startswith("client-")
    assert stateless_session_id("anonymous", None) == "client-anonymous"


async def test_a_wrong_path_answers_404_naming_the_mcp_path() -> None:
    import httpx2

    async with serving(ServeBench()) as served, httpx2.AsyncClient() as http:
        base = served.url.removesuffix("/mcp")
        for path in ("/", "/sse", "/v1/mcp"):
            r = await http.post(base + path, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            assert r.status_code == 404, (path, r.status_code)
            assert "The MCP endpoint is /mcp" in r.text, r.text
        assert (await http.get(base + "/healthz")).status_code == 200  # real routes are untouched


async def test_accepted_connections_send_without_waiting_for_acks() -> None:
    """`workbench serve` binds its own socket and hands it to uvicorn, which accepts on it with
    asyncio. Each response goes out in two sends (head, body); with Nagle on, the body waited
    for the client's delayed ACK, ~40 ms on every call. The accepted socket must have TCP_NODELAY."""
    accepted: list[socket.socket] = []

    class Accept(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted.append(transport.get_extra_info("socket"))

    with _bind(ServeSettings(transport="http", host="127.0.0.1", port=0)) as sock:
        server = await asyncio.get_running_loop().create_server(Accept, sock=sock)  # as uvicorn serves `sockets=`
        async with server:
            stream = await anyio.connect_tcp("127.0.0.1", sock.getsockname()[1])
            async with stream:
                with anyio.fail_after(5):
                    while not accepted:
                        await anyio.sleep(0.01)
                assert accepted[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
