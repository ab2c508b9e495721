"""An httpx2 client that keeps its upstream connections alive across SSE answers.

The SDK's streamable-HTTP client closes a POST's SSE response as soon as the JSON-RPC
answer event arrived, before the stream's terminating chunk is read; httpcore2 then
cannot reuse the connection and drops it, so every call through a 2025-era upstream
session opened a new TCP connection. Here a POST response stream, on close, first reads
what is left of it within small time and byte bounds (the server ends the stream right
after the answer, so normally only the chunk terminator is left) and so goes back to the
pool. Never for GET (the listen stream stays open on purpose) nor when the closing task
is being cancelled (a cancelled call's stream may not be finished: it is cut as before).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2

from adapters.tls import tls_trust

DRAIN_SECONDS = 0.02
DRAIN_BYTES = 64 * 1024


class _DrainingStream(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream) -> None:
        self._inner = inner
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk
        self._done = True

    async def aclose(self) -> None:
        try:
            if not self._done and anyio.current_effective_deadline() != -math.inf:
                await self._drain()
        finally:
            await self._inner.aclose()

    async def _drain(self) -> None:
        left = DRAIN_BYTES
        with anyio.move_on_after(DRAIN_SECONDS):
            async for chunk in self._inner:
                left -= len(chunk)
                if left < 0:  # not a finished answer but a live stream: give the connection up
                    return


class _DrainingTransport(httpx2.AsyncBaseTransport):
    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        if request.method != "POST" or not isinstance(response.stream, httpx2.AsyncByteStream):
            return response
        response.stream = _DrainingStream(response.stream)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class KeepAliveClient(httpx2.AsyncClient):
    """`httpx2.AsyncClient` whose transports (direct and proxy mounts alike) drain POST answers on
    close, verifying TLS with the process's shared trust (`adapters.tls`)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("verify", tls_trust())
        super().__init__(**kwargs)

    def _init_transport(self, *args: Any, **kwargs: Any) -> httpx2.AsyncBaseTransport:
        return _DrainingTransport(super()._init_transport(*args, **kwargs))

    def _init_proxy_transport(self, *args: Any, **kwargs: Any) -> httpx2.AsyncBaseTransport:
        return _DrainingTransport(super()._init_proxy_transport(*args, **kwargs))
