"""The floors under any Python MCP gateway on this machine: proxies that only forward bytes.

    python bench/_floor_proxy.py http|tcp PORT UPSTREAM_URL

bench_serve.py's `floor` and `tcp` targets.

`http` is built from the same pieces as `workbench serve`'s hop — uvicorn with httptools on uvloop in
front, one keep-alive aiohttp session behind — and does none of a gateway's work: no JSON parsed,
nothing validated, checked, recorded or shaped. A POST's body and MCP headers go to the upstream as
they came, its answer comes back as it went. What it costs over direct is what the two HTTP stacks
cost; what the gateway costs over it is the gateway's own work. A GET (the 2025 era's optional listen
stream) gets 405, which the SDK client takes as "no stream".

`tcp` relays each client connection to a connection of its own to the upstream, on uvloop, without
reading HTTP at all: what the extra loopback hop and its wake-ups cost. No gateway can be this (it
cannot authenticate, route or aggregate), so it is a floor under the floor.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp
import uvicorn
import uvloop

FORWARDED = (b"content-type", b"accept", b"mcp-protocol-version", b"mcp-session-id", b"mcp-method", b"mcp-name",
             b"last-event-id")
RETURNED = ("content-type", "mcp-session-id")


def proxy(upstream: str) -> Any:
    session: aiohttp.ClientSession | None = None

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal session
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
                await send({"type": "lifespan.startup.complete"})
            if session is not None:
                await session.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert session is not None
        if scope["method"] == "GET":
            await send({"type": "http.response.start", "status": 405, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"] if k in FORWARDED}
        async with session.request(scope["method"], upstream, data=b"".join(chunks), headers=headers) as response:
            body = await response.read()
            returned = [(k.encode(), v.encode()) for k in RETURNED if (v := response.headers.get(k)) is not None]
            await send({"type": "http.response.start", "status": response.status, "headers": returned})
            await send({"type": "http.response.body", "body": body})

    return app


class _Pipe(asyncio.Protocol):
    """One side of a relayed connection: what arrives is written to the other side (held until it exists)."""

    def __init__(self, other: _Pipe | None = None) -> None:
        self.other = other
        self.transport: asyncio.Transport | None = None
        self.held: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's subclasses

    def data_received(self, data: bytes) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.write(data)
        else:
            self.held.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.close()


def relay(host: str, port: int) -> type[_Pipe]:
    class Front(_Pipe):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            asyncio.ensure_future(self._connect())

        async def _connect(self) -> None:
            _, back = await asyncio.get_running_loop().create_connection(lambda: _Pipe(self), host, port)
            self.other = back
            assert back.transport is not None
            for data in self.held:
                back.transport.write(data)
            self.held.clear()

    return Front


async def serve_tcp(port: int, upstream: str) -> None:
    target = urlsplit(upstream)
    assert target.hostname is not None and target.port is not None
    server = await asyncio.get_running_loop().create_server(relay(target.hostname, target.port), "127.0.0.1", port)
    await server.serve_forever()


if __name__ == "__main__":
    kind, port, upstream = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if kind == "tcp":
        uvloop.run(serve_tcp(port, upstream))
    else:
        uvicorn.run(proxy(upstream), host="127.0.0.1", port=port, loop="uvloop", http="httptools", lifespan="on",
                    log_level="warning", access_log=False)
