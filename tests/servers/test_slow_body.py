"""A request body that never finishes (slowloris on the body) against the real listener: a
valid head announcing a body, then a trickle or nothing, gets 408 within `serve.body_timeout`,
its connection closed and its ASGI task ended. Only receiving is timed: a body that arrives in
time, a tool call slower than the timeout and an open SSE stream are all untouched. Raw bytes
over real sockets on 127.0.0.1, uvicorn exactly as `workbench serve` runs it."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import httpx2
import pytest
from serve_toolkit import ServeBench
from serving import free_port, http_client, until_closed

from servers import ServeSettings, create_app
from servers.listener import Listener, http_listener

pytestmark = pytest.mark.anyio

BODY_TIMEOUT = 0.5
CALL = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
    "name": "add", "arguments": {"a": 40, "b": 2}, "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}}}}).encode()


def head(length: int) -> bytes:
    return (b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json, text/event-stream\r\n"
            b"Content-Type: application/json\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\n"
            b"Mcp-Name: add\r\nContent-Length: %d\r\n\r\n" % length)


@asynccontextmanager
async def listening(**settings: object) -> AsyncIterator[tuple[ServeSettings, Listener]]:
    """ServeBench behind the real listener; the listener is yielded so a test can see its ASGI tasks."""
    serve = ServeSettings(transport="http", host="127.0.0.1", port=free_port(), log_json=False,
                          **settings)  # type: ignore[arg-type]  # test-chosen fields
    workbench = ServeBench()
    listener = http_listener(create_app(workbench, serve), serve)
    async with workbench, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve)
        with anyio.fail_after(10):
            while not listener.started:
                await anyio.sleep(0.01)
        try:
            yield serve, listener
        finally:
            listener.should_exit = True


async def no_requests_running(listener: Listener) -> None:
    with anyio.fail_after(5):
        while listener.server_state.tasks:
            await anyio.sleep(0.02)


async def test_a_body_that_never_arrives_gets_408_and_frees_its_task(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    async with listening(body_timeout=BODY_TIMEOUT) as (settings, listener):
        async with await anyio.connect_tcp("127.0.0.1", settings.port) as stalled:
            await stalled.send(head(1000) + b'{"jsonrpc": ')  # the head, a little of the body, then nothing
            with anyio.fail_after(3):
                while not listener.server_state.tasks:  # the app is waiting in receive()
                    await anyio.sleep(0.01)
            answer = await until_closed(stalled, 5)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert answer.endswith(b"Request body not received in time.")
        assert b"connection: close" in answer.lower()
        await no_requests_running(listener)
        assert any("request body not complete in time" in r.getMessage() for r in caplog.records)
        assert not [r for r in caplog.records if r.exc_info], "the app's disconnect must not log a traceback"


async def test_a_trickled_body_is_cut_off_by_its_deadline_not_reset_by_each_byte() -> None:
    async with listening(body_timeout=BODY_TIMEOUT) as (settings, listener):
        async with await anyio.connect_tcp("127.0.0.1", settings.port) as trickle:
            await trickle.send(head(len(CALL)))
            started = time.monotonic()
            with anyio.move_on_after(5):
                try:
                    for byte in CALL[:-1]:
                        await trickle.send(bytes([byte]))
                        await anyio.sleep(0.05)
                except anyio.BrokenResourceError:  # the server hung up part way
                    pass
            assert time.monotonic() - started < 4, "a byte every 50 ms kept the connection open"
            answer = await until_closed(trickle, 5)
        # The 408 may be lost to the reset a close with unread bytes causes; the close is what counts.
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer
        await no_requests_running(listener)


async def test_a_body_in_pieces_within_the_deadline_is_served() -> None:
    async with listening(body_timeout=BODY_TIMEOUT) as (settings, _):
        async with await anyio.connect_tcp("127.0.0.1", settings.port) as pieces:
            await pieces.send(head(len(CALL)))
            for part in (CALL[:20], CALL[20:60], CALL[60:]):
                await anyio.sleep(BODY_TIMEOUT / 5)
                await pieces.send(part)
            answer = b""
            with anyio.fail_after(5):
                while b'"total"' not in answer:
                    answer += await pieces.receive()
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
        assert b'"total":42' in answer.replace(b" ", b"")


async def test_slow_responses_are_not_timed(mode: str) -> None:
    """A tool call that outlasts the body timeout completes; an SSE stream stays open past it."""
    async with listening(body_timeout=0.3) as (settings, _):
        url = f"http://127.0.0.1:{settings.port}/mcp"
        async with http_client(url, mode=mode) as client:
            result = await client.call_tool("slow", {"seconds": 1.0})
        assert result.content[0].text == "slept 1.0"  # type: ignore[union-attr]

        # A 2025-era session's standalone GET stream: no body, long-lived, never cut off by this timeout.
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
        async with httpx2.AsyncClient(timeout=10) as http:
            opened = await http.post(url, json=init, headers=headers)
            session = {"Mcp-Session-Id": opened.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
            await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                            headers={**headers, **session})
            async with http.stream("GET", url, headers={"Accept": "text/event-stream", **session}) as stream:
                assert stream.status_code == 200
                ended = False
                with anyio.move_on_after(1.2):  # four body timeouts
                    async for _ in stream.aiter_bytes():
                        pass
                    ended = True
                assert not ended, "the SSE stream was closed"
            await http.delete(url, headers=session)


async def test_a_body_left_unread_after_the_response_closes_without_a_second_answer() -> None:
    """A request refused before its body is read (429): the trickled rest is still bounded, and
    no 408 follows the 429 already sent."""
    async with listening(body_timeout=BODY_TIMEOUT, limits={"requests_per_minute": 1}) as (settings, listener):
        async with httpx2.AsyncClient(timeout=10) as http:  # spends the one request of the minute
            await http.get(f"http://127.0.0.1:{settings.port}/mcp", headers={"Accept": "text/event-stream"})
        async with await anyio.connect_tcp("127.0.0.1", settings.port) as refused:
            await refused.send(head(1000) + b"{")
            answer = await until_closed(refused, 5)
        assert answer.startswith(b"HTTP/1.1 429 "), answer
        assert b" 408 " not in answer
        await no_requests_running(listener)


def test_the_listener_takes_the_body_timeout_from_the_settings() -> None:
    listener = http_listener(lambda *_: None, ServeSettings(transport="http", body_timeout=7))  # type: ignore[arg-type]
    listener.config.load()
    assert listener.config.http_protocol_class.body_timeout == 7  # type: ignore[union-attr]
