"""The upstream lane (`adapters.mcp_lane`): ordinary `tools/call` requests to a streamable-HTTP
server without the SDK's client stack.

Real upstreams on loopback: the toolbox `MCPServer` and the conformance "everything" server in
their own processes (results must equal the SDK path's, both eras), and a hostile upstream — a
real `MCPServer` app behind an ASGI wrapper that misbehaves on chosen tool names — served by
uvicorn in a thread. Each hostile answer must be refused with a clear message, within the size
bounds (patched small here), without hanging.
"""

from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import anyio
import mcp.types as mt
import pytest
import uvicorn
from anyio.abc import SocketAttribute, SocketStream
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_peers import free_port, start_toolbox, stop, wait_for_port

import adapters.mcp_lane_read as read_module
from adapters.mcp import McpWorkbench
from workbench.core import CallContext, ToolResult

pytestmark = pytest.mark.anyio

MODES = ["legacy", "2026-07-28"]
MODERN = "2026-07-28"
EVERYTHING = Path(__file__).resolve().parents[1] / "conformance" / "everything_server.py"


def _same(a: ToolResult, b: ToolResult) -> None:
    assert (a.is_error, a.structured, [c.model_dump() for c in a.content]) == \
        (b.is_error, b.structured, [c.model_dump() for c in b.content])


class SdkCalls:
    """Counts `Client.call_tool`: the SDK path's entry, which a lane call never reaches."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = Client.call_tool

        async def counted(client: Client, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await original(client, *args, **kwargs)

        monkeypatch.setattr(Client, "call_tool", counted)


@pytest.fixture
def sdk_calls(monkeypatch: pytest.MonkeyPatch) -> SdkCalls:
    return SdkCalls(monkeypatch)


def _sdk_only(wb: McpWorkbench) -> McpWorkbench:
    wb._lane = None
    return wb


# -- fidelity: the same results as the SDK path ------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_results_equal_the_sdk_path_and_the_sdk_client_is_not_used(
    http_toolbox: str, mode: str, sdk_calls: SdkCalls
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [
        ("echo", {"message": "hé"}), ("add", {"a": 2, "b": 40}), ("count_points", {"shape": {"points": []}}),
        ("mixed", {}), ("fail", {"reason": "on purpose"}), ("add", {"a": "not a number", "b": 1}),
    ]
    async with McpWorkbench.http(http_toolbox, name="lane", mode=mode) as lane, \
            McpWorkbench.http(http_toolbox, name="lane", mode=mode) as sdk:
        _sdk_only(sdk)
        assert lane.protocol_version == sdk.protocol_version
        for name, args in calls:
            sdk_before = sdk_calls.count
            expected = await sdk.call_tool(name, args)
            assert sdk_calls.count == sdk_before + 1
            got = await lane.call_tool(name, args)
            assert sdk_calls.count == sdk_before + 1, f"{name} went through the SDK client"
            _same(got, expected)
        assert lane._lane is not None and lane._lane.calls == len(calls)
        kinds = [c.type for c in (await lane.call_tool("mixed", {})).content]
        assert kinds == ["text", "image", "audio", "resource_link"]


@pytest.mark.parametrize("mode", MODES)
async def test_everything_server_results_equal_the_sdk_path(mode: str, sdk_calls: SdkCalls) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(EVERYTHING), "http", str(port)],
                            cwd=EVERYTHING.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        url = f"http://127.0.0.1:{port}/mcp"
        logs: list[str] = []

        async def log(params: mt.LoggingMessageNotificationParams) -> None:
            logs.append(str(params.data))

        async with McpWorkbench.http(url, name="e", mode=mode) as lane, \
                McpWorkbench.http(url, name="e", mode=mode) as sdk:
            _sdk_only(sdk)
            for name, args in [
                ("test_simple_text", {}), ("test_image_content", {}), ("test_audio_content", {}),
                ("test_embedded_resource", {}), ("test_multiple_content_types", {}), ("test_error_handling", {}),
                ("test_x_mcp_header", {"region": "eu-west"}), ("json_schema_2020_12_tool", {}),
            ]:
                _same(await lane.call_tool(name, args), await sdk.call_tool(name, args))
            assert (await lane.call_tool("test_x_mcp_header", {"region": "eu-west"})).text == "region=eu-west"
            # Log notifications on the call's stream reach the caller as on the SDK path.
            ctx = CallContext(log=log, log_level="debug")
            logged = await lane.call_tool("test_tool_with_logging", {}, ctx)
            assert logged.text == "Tool with logging executed successfully"
            assert logs == ["Tool execution started", "Tool processing data", "Tool execution completed"]
            if mode == "legacy":  # SEP-1699: the upstream closes the stream mid-call; the lane resumes it
                resumed = await lane.call_tool("test_reconnection", {}, ctx)
                assert resumed.text == "Reconnection test completed" and "After reconnect" in logs
            sdk_before = sdk_calls.count
            assert lane._lane is not None and lane._lane.calls == 10 + (mode == "legacy")
            await lane.call_tool("test_simple_text", {})
            assert sdk_calls.count == sdk_before
    finally:
        stop(proc)


@pytest.mark.parametrize("mode", MODES)
async def test_a_json_rpc_error_reaches_a_gateway_client_as_that_error(http_toolbox: str, mode: str) -> None:
    gateway_caller = CallContext(protocol_version=MODERN if mode == MODERN else "2025-11-25")
    async with McpWorkbench.http(http_toolbox, name="lane", mode=mode) as lane, \
            McpWorkbench.http(http_toolbox, name="lane", mode=mode) as sdk:
        _sdk_only(sdk)
        outcomes = []
        for wb in (lane, sdk):
            try:
                outcomes.append(await wb.call_tool("no_such_tool", {}, gateway_caller))
            except MCPError as e:
                outcomes.append((e.code, e.message))
        if isinstance(outcomes[0], ToolResult):
            _same(outcomes[0], outcomes[1])
        else:
            assert outcomes[0] == outcomes[1] and outcomes[0][0] == mt.INVALID_PARAMS


# -- timeouts, cancellation, restarts -----------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_a_timeout_cancels_the_call_on_the_upstream(http_toolbox: str, mode: str, sdk_calls: SdkCalls) -> None:
    tag = f"lane-timeout-{mode}"
    async with McpWorkbench.http(http_toolbox, name="web", mode=mode) as wb:
        started = time.monotonic()
        result = await wb.call_tool("slow", {"seconds": 10, "tag": tag}, CallContext().with_timeout(0.5))
        assert time.monotonic() - started < 5
        assert result.is_error and "timed out after 0.5 s and was cancelled on the server" in result.text
        assert sdk_calls.count == 0
        with anyio.fail_after(5):  # 2025: notifications/cancelled; 2026: the aborted POST
            while tag not in (await wb.call_tool("cancelled", {})).structured["result"]:
                await anyio.sleep(0.05)
        assert (await wb.call_tool("echo", {"message": "still fine"})).text == "still fine"


@pytest.mark.parametrize("mode", MODES)
async def test_an_upstream_restart_is_recovered(mode: str) -> None:
    port = free_port()
    proc = start_toolbox("http", port)
    try:
        async with McpWorkbench.http(f"http://127.0.0.1:{port}/mcp", name="web", mode=mode) as wb:
            first = (await wb.call_tool("pid", {})).structured["result"]
            old_session = wb._conn.http_session_id
            stop(proc)
            proc = start_toolbox("http", port)
            # 2025: the new process answers 404 to the old session; the call retries on a new one.
            after = await wb.call_tool("pid", {})
            if after.is_error:  # 2026: at most one call sees the dropped connection
                assert mode == MODERN and "will reconnect on the next call" in after.text, after.text
                after = await wb.call_tool("pid", {})
            assert after.structured["result"] not in (None, first)
            if mode == "legacy":
                assert wb._conn.http_session_id not in (None, old_session)
            assert wb._lane is not None and wb._lane.calls >= 2
    finally:
        stop(proc)


async def test_a_dead_upstream_is_a_disconnect_with_a_clear_message() -> None:
    port = free_port()
    proc = start_toolbox("http", port)
    try:
        async with McpWorkbench.http(f"http://127.0.0.1:{port}/mcp", name="web", mode=MODERN) as wb:
            assert (await wb.call_tool("echo", {"message": "x"})).text == "x"
            stop(proc)
            result = await wb.call_tool("echo", {"message": "x"})
            assert result.is_error and "MCP server 'web' disconnected" in result.text
            assert "will reconnect on the next call" in result.text and wb.health().state == "down"
    finally:
        stop(proc)


# -- when the SDK path serves instead -----------------------------------------------------------


async def test_a_call_with_progress_takes_the_sdk_path(http_toolbox: str, sdk_calls: SdkCalls) -> None:
    seen: list[float] = []

    async def progress(p: float, total: float | None, message: str | None) -> None:
        seen.append(p)

    async with McpWorkbench.http(http_toolbox, name="web") as wb:
        result = await wb.call_tool("slow", {"seconds": 0.3, "tag": "p"}, CallContext(progress=progress))
        assert result.text == "slept 0.3" and seen and sdk_calls.count == 1
        assert wb._lane is not None and wb._lane.calls == 0


async def test_a_caller_who_can_be_asked_takes_the_sdk_path(http_toolbox: str, sdk_calls: SdkCalls) -> None:
    async def sampling(context: Any, params: mt.CreateMessageRequestParams) -> mt.CreateMessageResult:
        return mt.CreateMessageResult(role="assistant", model="m", content=mt.TextContent(type="text", text="42"))

    async with McpWorkbench.http(http_toolbox, name="web", relay_client_requests=True) as wb:
        # A 2026 caller declaring sampling: its own capability twin, on the SDK path, answers the question.
        asked = await wb.call_tool("think", {"prompt": "?"}, CallContext(protocol_version=MODERN, sampling=sampling))
        assert asked.text == "model said: 42" and sdk_calls.count == 1
        # A 2025 caller declaring nothing: the shared session relays nothing, so the lane serves it.
        assert (await wb.call_tool("echo", {"message": "x"}, CallContext(protocol_version="2025-11-25"))).text == "x"
        assert sdk_calls.count == 1 and wb._lane is not None and wb._lane.calls == 1


async def test_no_lane_for_oauth_workbench_callbacks_sse_or_a_proxy(
    http_toolbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx2

    async def sampling(context: Any, params: mt.CreateMessageRequestParams) -> mt.ErrorData:
        return mt.ErrorData(code=1, message="no")

    assert McpWorkbench.http(http_toolbox, auth=httpx2.BasicAuth("a", "b"))._lane is None
    assert McpWorkbench.http(http_toolbox, sampling_callback=sampling)._lane is None
    assert McpWorkbench.sse(http_toolbox)._lane is None
    assert McpWorkbench.stdio(sys.executable, ["-c", "pass"])._lane is None
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "")
    assert McpWorkbench.http(http_toolbox)._lane is None
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert McpWorkbench.http(http_toolbox)._lane is not None


# -- a hostile upstream -------------------------------------------------------------------------

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Behaviour = Callable[["Hostile", dict[str, Any], Send], Awaitable[None]]
BEHAVIOURS: dict[str, Behaviour] = {}


def behaviour(fn: Behaviour) -> Behaviour:
    BEHAVIOURS[fn.__name__] = fn
    return fn


async def _respond(send: Send, status: int, body: bytes, content_type: str | None,
                   extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", content_type.encode())] if content_type else []
    headers += [(b"content-length", str(len(body)).encode())] + (extra or [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _stream(send: Send, chunks: AsyncIterator[bytes], content_type: bytes = b"text/event-stream") -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
    async for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await anyio.sleep(0)  # uvicorn drops what is sent after a disconnect: let the watcher see it
    await send({"type": "http.response.body", "body": b""})


def _event(message: dict[str, Any]) -> bytes:
    return b"event: message\r\ndata: " + json.dumps(message).encode() + b"\r\n\r\n"


def _answer(request: dict[str, Any], text: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request["id"], "result": {"content": [{"type": "text", "text": text}]}}


@behaviour
async def oversized(h: Hostile, request: dict[str, Any], send: Send) -> None:
    body = json.dumps(_answer(request, "x" * (read_module.MAX_RESPONSE_BYTES + 10))).encode()
    await _respond(send, 200, body, "application/json")


@behaviour
async def oversized_chunked(h: Hostile, request: dict[str, Any], send: Send) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"jsonrpc": "2.0", "id": "' + request["id"].encode() + b'", "result": {"content": [{"text": "'
        while True:
            h.sent += 64 * 1024
            yield b"x" * 64 * 1024

    await _stream(send, chunks(), b"application/json")


@behaviour
async def unannounced(h: Hostile, request: dict[str, Any], send: Send) -> None:
    """A JSON answer without a Content-Length, sent whole: chunked, with its end, in one write."""
    body = json.dumps(_answer(request, "x" * 1000)).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


@behaviour
async def endless(h: Hostile, request: dict[str, Any], send: Send) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        note = _event({"jsonrpc": "2.0", "method": "notifications/message",
                       "params": {"level": "debug", "data": "still working " + "." * 200}})
        while True:
            h.sent += len(note)
            yield note

    await _stream(send, chunks())


@behaviour
async def huge_event(h: Hostile, request: dict[str, Any], send: Send) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"event: message\r\ndata: "
        while True:
            h.sent += 4096
            yield b"y" * 4096

    await _stream(send, chunks())


@behaviour
async def many_line_event(h: Hostile, request: dict[str, Any], send: Send) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"event: message\r\n"
        while True:  # short data lines, never the blank line that ends the event
            h.sent += 1024
            yield b"data: " + b"z" * 1016 + b"\r\n"

    await _stream(send, chunks())


@behaviour
async def deep_nesting(h: Hostile, request: dict[str, Any], send: Send) -> None:
    nested = b"[" * 100_000 + b"]" * 100_000  # json.loads raises RecursionError, not ValueError
    body = b'{"jsonrpc": "2.0", "id": "' + request["id"].encode() + b'", "result": {"content": ' + nested + b"}}"
    await _respond(send, 200, body, "application/json")


@behaviour
async def huge_retry(h: Hostile, request: dict[str, Any], send: Send) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # more digits than int() converts (4300): a long wait, nothing worse
        yield b"retry: " + b"9" * 5000 + b"\r\n\r\n"
        yield _event(_answer(request, "answered after naming a long retry"))

    await _stream(send, chunks())


@behaviour
async def drop_me(h: Hostile, request: dict[str, Any], send: Send) -> None:
    h.ran.append("drop_me")  # runs, answers; `_dropping_proxy` keeps the answer from the client
    await _respond(send, 200, json.dumps(_answer(request, "ran once")).encode(), "application/json")


@behaviour
async def gzip_bomb(h: Hostile, request: dict[str, Any], send: Send) -> None:
    text = "0" * (read_module.MAX_RESPONSE_BYTES + 10)  # a few hundred bytes compressed
    body = gzip.compress(json.dumps(_answer(request, text)).encode())
    await _respond(send, 200, body, "application/json", [(b"content-encoding", b"gzip")])


@behaviour
async def malformed(h: Hostile, request: dict[str, Any], send: Send) -> None:
    await _respond(send, 200, b'{"jsonrpc": "2.0", "id": ', "application/json")


@behaviour
async def wrong_id(h: Hostile, request: dict[str, Any], send: Send) -> None:
    await _respond(send, 200, json.dumps(_answer({"id": "someone-else"}, "not yours")).encode(), "application/json")


@behaviour
async def odd_method(h: Hostile, request: dict[str, Any], send: Send) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield _event({"jsonrpc": "2.0", "id": 7, "method": {"not": "a string"}})

    await _stream(send, chunks())


@behaviour
async def plain_text(h: Hostile, request: dict[str, Any], send: Send) -> None:
    await _respond(send, 200, b"hello", "text/plain")


@behaviour
async def not_a_result(h: Hostile, request: dict[str, Any], send: Send) -> None:
    body = {"jsonrpc": "2.0", "id": request["id"], "result": {"content": "should be a list"}}
    await _respond(send, 200, json.dumps(body).encode(), "application/json")


@behaviour
async def rpc_error(h: Hostile, request: dict[str, Any], send: Send) -> None:
    error = {"code": -32021, "message": "this tool needs elicitation", "data": {"requiredCapabilities": ["elicitation"]}}
    await _respond(send, 400, json.dumps({"jsonrpc": "2.0", "id": request["id"], "error": error}).encode(),
                   "application/json")


@behaviour
async def http_500(h: Hostile, request: dict[str, Any], send: Send) -> None:
    await _respond(send, 500, b"", None)


@behaviour
async def logs_then_answers(h: Hostile, request: dict[str, Any], send: Send) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield _event({"jsonrpc": "2.0", "method": "notifications/message",
                      "params": {"level": "warning", "logger": "up", "data": "careful"}})
        yield _event({"jsonrpc": "2.0", "method": "notifications/progress",
                      "params": {"progressToken": "nobody", "progress": 1}})
        yield _event({"jsonrpc": "2.0", "method": "notifications/resources/list_changed"})
        yield _event(_answer(request, "logged"))

    await _stream(send, chunks())


def _asks(method: str, params: dict[str, Any] | None) -> Behaviour:
    async def ask(h: Hostile, request: dict[str, Any], send: Send) -> None:
        question = {"jsonrpc": "2.0", "id": f"srv-{method}", "method": method}
        if params is not None:
            question["params"] = params

        async def chunks() -> AsyncIterator[bytes]:
            yield _event(question)
            with anyio.fail_after(5):
                while question["id"] not in h.replies:
                    await anyio.sleep(0.01)
            yield _event(_answer(request, json.dumps(h.replies[question["id"]])))

        await _stream(send, chunks())

    return ask


BEHAVIOURS["asks_sampling"] = _asks("sampling/createMessage", {
    "messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}], "maxTokens": 5})
BEHAVIOURS["asks_ping"] = _asks("ping", None)
BEHAVIOURS["asks_nonsense"] = _asks("bogus/method", {})


@behaviour
async def header_mismatch(h: Hostile, request: dict[str, Any], send: Send) -> None:
    error = {"code": -32020, "message": "Mcp-Name does not match the body"}
    await _respond(send, 400, json.dumps({"jsonrpc": "2.0", "id": request["id"], "error": error}).encode(),
                   "application/json")


LANE_ONLY = {"header_mismatch"}  # the SDK path's request of these reaches the real server


@behaviour
async def redirect(h: Hostile, request: dict[str, Any], send: Send) -> None:
    await _respond(send, 307, b"", None, [(b"location", b"/mcp?redirected=1")])


class Hostile:
    """A real `MCPServer` app (handshake, listings, the SDK path) whose `tools/call` of a name in
    BEHAVIOURS misbehaves instead; records the client's answers to its questions."""

    def __init__(self) -> None:
        server = MCPServer("hostile")
        for name in [*BEHAVIOURS, "fine"]:
            server.add_tool(lambda name=name: f"{name} ran on the server", name=name, description=name)
        self.inner = server.streamable_http_app()
        self.replies: dict[str, Any] = {}
        self.ran: list[str] = []
        self.sent = 0
        self.lane_posts = 0
        self.lane_peers: list[tuple[str, int]] = []

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.inner(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        request = json.loads(body)
        if isinstance(request.get("id"), str) and request["id"].startswith("wb-"):
            self.lane_posts += 1  # the lane's ids are strings, the SDK dispatcher's integers
            self.lane_peers.append(tuple(scope["client"]))
        name = (request.get("params") or {}).get("name")
        if "method" not in request and "id" in request:  # the client answering one of our questions
            self.replies[request["id"]] = request.get("result", request.get("error"))
            return await _respond(send, 202, b"", None)
        from_lane = isinstance(request.get("id"), str) and request["id"].startswith("wb-")
        if request.get("method") == "tools/call" and name in BEHAVIOURS and b"redirected" not in scope["query_string"] \
                and (from_lane or name not in LANE_ONLY):
            async with anyio.create_task_group() as tg:

                async def hang_up_with_the_client() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(hang_up_with_the_client)
                await BEHAVIOURS[name](self, request, send)
                tg.cancel_scope.cancel()
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.inner(scope, replay, send)


@pytest.fixture(scope="module")
def hostile() -> Iterator[tuple[Hostile, str]]:
    app = Hostile()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "the hostile upstream did not start"
            time.sleep(0.05)
    yield app, f"http://127.0.0.1:{port}/mcp"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_module, "MAX_RESPONSE_BYTES", 256 * 1024)
    monkeypatch.setattr(read_module, "MAX_EVENT_BYTES", 32 * 1024)


REFUSALS = {
    "oversized": "the server announced a",
    "oversized_chunked": "sent more than 262144 bytes",
    "gzip_bomb": "sent more than 262144 bytes",  # counted as decompressed
    "endless": "sent more than 262144 bytes on the SSE stream without answering the call",
    "huge_event": "sent an SSE event larger than 32768 bytes",
    "many_line_event": "sent an SSE event larger than 32768 bytes",
    "malformed": "sent a malformed JSON answer",
    "deep_nesting": "sent a malformed JSON answer",
    "wrong_id": "with the response to 'someone-else'",
    "plain_text": "answered with content type 'text/plain'",
    "odd_method": "sent a message whose method is not a string",
    "not_a_result": "the server answered tools/call with a result that is not a CallToolResult: content: Input should be a valid list",
    "http_500": "Server returned an error response (HTTP 500)",
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(REFUSALS))
async def test_a_hostile_answer_is_refused_clearly(
    hostile: tuple[Hostile, str], small_limits: None, name: str, mode: str
) -> None:
    app, url = hostile
    async with McpWorkbench.http(url, name="hostile", mode=mode, timeout=20) as wb:
        app.sent = 0
        started = time.monotonic()
        result = await wb.call_tool(name, {})
        assert time.monotonic() - started < 10  # refused, not timed out
        assert result.is_error and REFUSALS[name] in result.text, result.text
        assert result.text.startswith(f"tool {name!r} on MCP server 'hostile' failed") or "disconnected" in result.text
        with anyio.fail_after(5):  # the lane hung up: an endless answer stops being produced
            while True:
                sent = app.sent
                await anyio.sleep(0.3)
                if app.sent == sent:
                    break
        assert (await wb.call_tool("fine", {})).text == "fine ran on the server"  # the connection is fine


@pytest.mark.parametrize("mode", MODES)
async def test_an_unannounced_answer_that_came_whole_is_held_to_the_bound_too(
    hostile: tuple[Hostile, str], mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`read_all` takes an answer that has all arrived without waiting for it: the bound still holds."""
    _, url = hostile
    async with McpWorkbench.http(url, name="hostile", mode=mode) as wb:
        assert (await wb.call_tool("unannounced", {})).text == "x" * 1000
        monkeypatch.setattr(read_module, "MAX_RESPONSE_BYTES", 300)
        refused = await wb.call_tool("unannounced", {})
        assert refused.is_error and "sent more than 300 bytes" in refused.text, refused.text


@pytest.mark.parametrize("mode", MODES)
async def test_answered_calls_keep_their_connection(hostile: tuple[Hostile, str], mode: str) -> None:
    """An answer read to its end (JSON, or an SSE stream drained after its answer event) returns the
    connection to the pool: one TCP connection carries every call."""
    app, url = hostile
    async with McpWorkbench.http(url, name="hostile", mode=mode) as wb:
        del app.lane_peers[:]
        for _ in range(5):
            assert (await wb.call_tool("fine", {})).text == "fine ran on the server"
        assert len(app.lane_peers) == 5 and len(set(app.lane_peers)) == 1, app.lane_peers


@pytest.mark.parametrize("mode", MODES)
async def test_an_endless_retry_field_is_a_long_wait_not_a_crash(hostile: tuple[Hostile, str], mode: str) -> None:
    _, url = hostile
    async with McpWorkbench.http(url, name="hostile", mode=mode) as wb:
        result = await wb.call_tool("huge_retry", {})
        assert result.text == "answered after naming a long retry", result.text
        assert wb._lane is not None and wb._lane.calls == 1


class _Chunks:
    """A response body as the chunks aiohttp hands over (what is buffered: up to a few hundred KiB)."""

    def __init__(self, *chunks: bytes) -> None:
        self.content = self
        self._chunks = chunks

    async def iter_any(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


async def _events(*chunks: bytes) -> list[bytes]:
    return [e async for e in read_module.SseStream().messages(cast(Any, _Chunks(*chunks)))]


async def test_sse_lines_end_in_lf_crlf_or_cr_even_split_across_chunks() -> None:
    assert await _events(b"data: a\r", b"\ndata: b\r\n\r", b"\n", b"data: c\rdata: d\r\r",
                         b"data: e\n\n") == [b"a\nb", b"c\nd", b"e"]


async def test_a_chunk_of_short_lines_is_searched_once_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """Searching for `\\r` and `\\n` apart rescanned the rest of a chunk on every line: quadratic, so an
    upstream's 1 MiB of bare newlines held the event loop (every caller's) 11.8 s here, against 1.1 s
    in one pass. Counted, not timed: the bytes the line search looks at stay within the chunk's size."""
    real, scanned = read_module._EOL, [0]

    class Counting:
        def search(self, buffer: bytearray, start: int) -> Any:
            found = real.search(buffer, start)
            scanned[0] += (found.end() if found else len(buffer)) - start
            return found

    monkeypatch.setattr(read_module, "_EOL", Counting())
    for ending in (b"\n", b"\r", b"\r\n"):
        scanned[0] = 0
        body = ending * 100_000 + b"data: {}" + ending * 2 + b": a comment, so a last CR is not left waiting\n"
        assert await _events(body) == [b"{}"] and scanned[0] <= len(body), ending


@asynccontextmanager
async def _dropping_proxy(upstream: str) -> AsyncIterator[str]:
    """A TCP proxy to `upstream` that, for a request naming `drop_me`, lets the upstream run it and
    then closes the client's connection without the answer: a crash, a restart, a balancer mid-call."""
    target = urlsplit(upstream)

    async def relay(client: SocketStream) -> None:
        async with client, await anyio.connect_tcp(target.hostname or "", target.port or 80) as server, \
                anyio.create_task_group() as tg:
            dropping = False

            async def to_server() -> None:
                nonlocal dropping
                async for data in client:
                    dropping = dropping or b'"drop_me"' in data
                    await server.send(data)
                tg.cancel_scope.cancel()

            async def to_client() -> None:
                async for data in server:
                    if dropping:
                        break
                    await client.send(data)
                tg.cancel_scope.cancel()

            tg.start_soon(to_server)
            tg.start_soon(to_client)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, relay)
        yield f"http://127.0.0.1:{listener.extra(SocketAttribute.local_port)}{target.path}"
        tg.cancel_scope.cancel()


@pytest.mark.parametrize("mode", MODES)
async def test_a_call_whose_connection_closes_unanswered_is_not_sent_again(
    hostile: tuple[Hostile, str], mode: str
) -> None:
    """POST is not idempotent (RFC 9112 §9.3.1): the upstream may have run the call before the
    connection closed, so resending it on another connection could run it twice. The SDK path's
    httpcore does not resend either: the caller hears of a disconnect."""
    app, url = hostile
    async with _dropping_proxy(url) as proxied, McpWorkbench.http(proxied, name="hostile", mode=mode) as wb:
        assert (await wb.call_tool("fine", {})).text == "fine ran on the server"  # a pooled connection to reuse
        app.ran.clear()
        result = await wb.call_tool("drop_me", {})
        assert result.is_error and "disconnected" in result.text, result.text
        assert app.ran == ["drop_me"]


@pytest.mark.parametrize("mode", MODES)
async def test_an_upstream_json_rpc_error_passes_through(hostile: tuple[Hostile, str], mode: str) -> None:
    _, url = hostile
    async with McpWorkbench.http(url, name="hostile", mode=mode) as wb:
        with pytest.raises(MCPError) as raised:
            await wb.call_tool("rpc_error", {}, CallContext(protocol_version="2025-11-25"))
        assert (raised.value.code, raised.value.message, raised.value.error.data) == \
            (-32021, "this tool needs elicitation", {"requiredCapabilities": ["elicitation"]})
        plain = await wb.call_tool("rpc_error", {})
        assert plain.is_error and plain.text == "tool 'rpc_error' on MCP server 'hostile' failed: " \
            "this tool needs elicitation"


@pytest.mark.parametrize("mode", MODES)
async def test_notifications_on_the_stream_are_delivered(hostile: tuple[Hostile, str], mode: str) -> None:
    _, url = hostile
    logs: list[mt.LoggingMessageNotificationParams] = []

    async def log(params: mt.LoggingMessageNotificationParams) -> None:
        logs.append(params)

    async with McpWorkbench.http(url, name="hostile", mode=mode) as wb:
        events: list[Any] = []
        wb.on_event(lambda event, session: _append(events, event))
        result = await wb.call_tool("logs_then_answers", {}, CallContext(log=log))
        assert result.text == "logged" and [(p.level, p.data) for p in logs] == [("warning", "careful")]
        assert [type(e).__name__ for e in events] == ["ResourcesListChanged"]


async def _append(events: list[Any], event: Any) -> None:
    events.append(event)


@pytest.mark.parametrize("mode", MODES)
async def test_questions_from_the_upstream_are_answered_as_the_sdk_would(
    hostile: tuple[Hostile, str], mode: str
) -> None:
    app, url = hostile
    async with McpWorkbench.http(url, name="hostile", mode=mode, relay_client_requests=True) as wb:
        caller = CallContext(protocol_version="2025-11-25")  # a client that declared nothing to answer with
        declined = await wb.call_tool("asks_sampling", {}, caller)
        reply = json.loads(declined.text)
        assert reply["code"] == mt.INVALID_REQUEST and "cannot answer sampling" in reply["message"]
        assert json.loads((await wb.call_tool("asks_ping", {}, caller)).text) == {}
        unknown = json.loads((await wb.call_tool("asks_nonsense", {}, caller)).text)
        assert unknown["code"] == mt.METHOD_NOT_FOUND
        assert wb._lane is not None and wb._lane.calls == 3


async def test_a_redirect_is_left_to_the_sdk_path(hostile: tuple[Hostile, str], sdk_calls: SdkCalls) -> None:
    app, url = hostile
    async with McpWorkbench.http(url, name="hostile", mode=MODERN) as wb:
        posts = app.lane_posts
        result = await wb.call_tool("redirect", {})
        assert result.text == "redirect ran on the server"  # the SDK followed the same-origin 307
        assert app.lane_posts == posts + 1 and sdk_calls.count == 1
        assert wb._lane is not None and wb._lane.calls == 0


async def test_a_2026_header_mismatch_is_left_to_the_sdk_path(hostile: tuple[Hostile, str], sdk_calls: SdkCalls) -> None:
    app, url = hostile
    async with McpWorkbench.http(url, name="hostile", mode=MODERN) as wb:
        posts = app.lane_posts
        result = await wb.call_tool("header_mismatch", {})
        assert result.text == "header_mismatch ran on the server"  # the SDK path re-listed and resent it
        assert app.lane_posts == posts + 1 and sdk_calls.count == 1


@pytest.mark.parametrize("mode", MODES)
async def test_the_callers_trace_context_reaches_the_upstream(
    http_toolbox: str, mode: str, monkeypatch: pytest.MonkeyPatch, sdk_calls: SdkCalls
) -> None:
    import mcp.shared._otel as sdk_otel
    from opentelemetry.trace import NoOpTracer

    # No tracer, so no span of ours in between: the upstream sees the caller's traceparent itself. (A provider
    # an earlier test installed, such as Studio's, would record a client span and send that span's id instead.)
    monkeypatch.setattr(sdk_otel, "_tracer", NoOpTracer())
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with McpWorkbench.http(http_toolbox, name="web", mode=mode) as wb:
        ctx = CallContext(trace_context={"traceparent": traceparent, "tracestate": "k=v"})
        assert (await wb.call_tool("traceparent", {}, ctx)).text == traceparent
        assert sdk_calls.count == 0


@pytest.mark.parametrize("mode", MODES)
async def test_a_lane_call_is_a_client_span_whose_context_the_upstream_continues(
    http_toolbox: str, mode: str, monkeypatch: pytest.MonkeyPatch, sdk_calls: SdkCalls
) -> None:
    import mcp.shared._otel as sdk_otel
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(sdk_otel, "_tracer", provider.get_tracer("test"))  # the SDK's own spans, as on its path
    async with McpWorkbench.http(http_toolbox, name="web", mode=mode) as wb:
        exporter.clear()
        seen = (await wb.call_tool("traceparent", {})).text
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "MCP send tools/call traceparent"]
    assert span.kind is SpanKind.CLIENT and span.attributes is not None
    assert span.attributes["mcp.method.name"] == "tools/call" and sdk_calls.count == 0
    assert seen.split("-")[1:3] == [f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"]
