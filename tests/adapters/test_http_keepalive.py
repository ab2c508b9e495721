"""The upstream HTTP transport reuses its connections: a 2025-era session's SSE answers no longer cost a
TCP connection each (counted by a loopback relay in front of the SDK toolbox server)."""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterator

import anyio
import anyio.abc
import httpx2
import pytest

from adapters import http_keepalive
from adapters.mcp import McpWorkbench

pytestmark = pytest.mark.anyio

CALLS = 30


async def _pipe(source: anyio.abc.ByteStream, sink: anyio.abc.ByteStream) -> None:
    try:
        async for chunk in source:
            await sink.send(chunk)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass
    finally:
        await sink.aclose()


async def _relay(listener: anyio.abc.Listener[anyio.abc.SocketStream], port: int, accepted: list[int]) -> None:
    async def serve(client: anyio.abc.SocketStream) -> None:
        accepted.append(1)
        async with client, await anyio.connect_tcp("127.0.0.1", port) as upstream, anyio.create_task_group() as tg:
            tg.start_soon(_pipe, client, upstream)
            tg.start_soon(_pipe, upstream, client)

    await listener.serve(serve)


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_calls_reuse_upstream_connections(http_toolbox: str, mode: str) -> None:
    port = int(http_toolbox.rsplit(":", 1)[1].split("/")[0])
    accepted: list[int] = []
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener, anyio.create_task_group() as tg:
        tg.start_soon(_relay, listener, port, accepted)
        relay_port = listener.extra(anyio.abc.SocketAttribute.local_port)
        with anyio.fail_after(60):
            async with McpWorkbench.http(f"http://127.0.0.1:{relay_port}/mcp", mode=mode) as wb:
                before = len(accepted)
                for i in range(CALLS):
                    assert (await wb.call_tool("add", {"a": i, "b": 1})).structured == {"total": i + 1}
                opened = len(accepted) - before
        tg.cancel_scope.cancel()
    # a handful at most (a listen stream, a connection the pool had not yet got back): not one per call
    assert opened <= 3, f"{CALLS} calls opened {opened} upstream connections"


class _Endless(httpx2.AsyncByteStream):
    """A live stream: a chunk whenever asked (a GET listen stream, an unfinished answer)."""

    def __init__(self) -> None:
        self.reads = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            self.reads += 1
            await anyio.lowlevel.checkpoint()
            yield b"x" * 1024

    async def aclose(self) -> None:
        self.closed = True


async def test_drain_is_bounded_in_bytes() -> None:
    inner = _Endless()
    await http_keepalive._DrainingStream(inner).aclose()
    assert inner.closed and inner.reads <= http_keepalive.DRAIN_BYTES // 1024 + 2


async def test_no_drain_when_the_closing_task_is_cancelled() -> None:
    inner = _Endless()
    with anyio.CancelScope() as scope:
        scope.cancel()
        assert anyio.current_effective_deadline() == -math.inf
        await http_keepalive._DrainingStream(inner).aclose()
    assert inner.closed and inner.reads == 0


async def test_only_post_answers_are_drained() -> None:
    transport = http_keepalive._DrainingTransport(httpx2.MockTransport(lambda request: httpx2.Response(200, content=b"ok")))
    get = await transport.handle_async_request(httpx2.Request("GET", "http://127.0.0.1:1/mcp"))
    post = await transport.handle_async_request(httpx2.Request("POST", "http://127.0.0.1:1/mcp"))
    assert not isinstance(get.stream, http_keepalive._DrainingStream)
    assert isinstance(post.stream, http_keepalive._DrainingStream)


async def test_connections_share_one_tls_trust(http_toolbox: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading the CA store costs ~50 ms of event-loop CPU; httpx2 does it for every client it
    builds. Upstream connections (here three, in both eras) share the process's one context."""
    import httpcore2

    from adapters.tls import tls_trust

    built: list[int] = []
    default = httpcore2.default_ssl_context

    def counted(**kwargs: bool) -> ssl.SSLContext:
        built.append(1)
        return default(**kwargs)

    monkeypatch.setattr(httpcore2, "default_ssl_context", counted)
    tls_trust.cache_clear()
    try:
        with anyio.fail_after(60):
            for mode in ("legacy", "2026-07-28", "auto"):
                async with McpWorkbench.http(http_toolbox, mode=mode) as wb:
                    assert (await wb.call_tool("add", {"a": 1, "b": 2})).structured == {"total": 3}
        assert len(built) == 1
        assert tls_trust() is tls_trust() and tls_trust().verify_mode is ssl.CERT_REQUIRED
    finally:
        tls_trust.cache_clear()
