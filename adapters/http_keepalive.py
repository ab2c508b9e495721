"""An httpx2 client that keeps its upstream connections alive across SSE answers.

The SDK's streamable-HTTP client closes a POST's SSE response as soon as the JSON-RPC
answer event arrived, before the stream's terminating chunk is read; httpcore2 then
cannot reuse the connection and drops it, so every call through a 2025-era upstream
session opened a new TCP connection. Here a POST response stream, on close, first reads
what is left of it within small time and byte bounds (the server ends the stream right
after the answer, so normally only the chunk terminator is left) and so goes back to the
pool. Never for GET (the listen stream stays open on purpose) nor when the closing task
is being cancelled (a cancelled call's stream may not be finished: it is cut as before).

A POST's JSON answer is also bounded (`MAX_RESPONSE_BYTES`, as the lane's): the SDK's client reads
one whole, of any size an upstream likes; past the bound the read stops with a `StreamError`, which
the SDK reports as that request's failure. A gzip or deflate answer is inflated here, so the bound
counts what it becomes (a kilobyte of gzip can inflate to a gigabyte). (An SSE answer is bounded per
event by the SDK.)
"""

from __future__ import annotations

import math
import zlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2

from adapters.tls import tls_trust

DRAIN_SECONDS = 0.02
DRAIN_BYTES = 64 * 1024
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
"""Everything one call may read from the upstream: the JSON answer, or the whole SSE stream
(notifications included). A tool result larger than this is not an ordinary one."""


_INFLATED = {"gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS | 32}
"""The content encodings httpx2 accepts, as zlib reads them (deflate: zlib-wrapped, as HTTP means it)."""


class BadAnswer(httpx2.StreamError):
    """A JSON answer past `MAX_RESPONSE_BYTES`, or one whose content encoding does not decode."""


class _DrainingStream(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, *, bounded: bool = False, encoding: str | None = None) -> None:
        self._inner = inner
        self._bounded = bounded
        self._inflate = zlib.decompressobj(_INFLATED[encoding]) if encoding is not None else None
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        read = 0
        async for raw in self._inner:
            chunk = raw if self._inflate is None else self._inflated(raw, MAX_RESPONSE_BYTES - read + 1)
            read += len(chunk)
            if self._bounded and read > MAX_RESPONSE_BYTES:
                raise BadAnswer(f"the server's answer exceeds {MAX_RESPONSE_BYTES} bytes")
            yield chunk
        if self._inflate is not None and (rest := self._inflated(b"", None)):
            yield rest
        self._done = True

    def _inflated(self, raw: bytes, at_most: int | None) -> bytes:
        """`raw` inflated, at most `at_most` bytes of it (past that the answer is refused anyway)."""
        assert self._inflate is not None
        try:
            return self._inflate.decompress(raw, at_most) if at_most is not None else self._inflate.flush()
        except zlib.error as e:
            raise BadAnswer(f"the server's answer does not decode: {e}") from None

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


class _Refused(httpx2.AsyncByteStream):
    """An answer not to be read: reading it raises `BadAnswer` (what the SDK reports as the request's failure)."""

    def __init__(self, inner: httpx2.AsyncByteStream, why: str) -> None:
        self._inner = inner
        self._why = why

    async def __aiter__(self) -> AsyncIterator[bytes]:
        raise BadAnswer(self._why)
        yield b""  # pragma: no cover — makes this an async generator

    async def aclose(self) -> None:
        await self._inner.aclose()


class _DrainingTransport(httpx2.AsyncBaseTransport):
    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        if request.method != "POST" or not isinstance(response.stream, httpx2.AsyncByteStream):
            return response
        if not response.headers.get("content-type", "").lower().startswith("application/json"):
            response.stream = _DrainingStream(response.stream)
            return response
        encoding = response.headers.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity", *_INFLATED):
            # httpx2 would undo any stack of codings after the bound ("gzip, gzip": a few kilobytes
            # that inflate past any memory) and zstd/br where installed: what it cannot bound, it refuses.
            response.stream = _Refused(response.stream, f"the server's answer is encoded {encoding!r}; only one "
                                       "gzip or deflate layer is read (so that what it inflates to can be bounded)")
            return response
        if encoding in _INFLATED:  # inflated here, within the bound; httpx2 must not inflate it again
            del response.headers["content-encoding"]
            response.headers.pop("content-length", None)
        response.stream = _DrainingStream(response.stream, bounded=True,
                                          encoding=encoding if encoding in _INFLATED else None)
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
