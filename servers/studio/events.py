"""`EventStream`: a Server-Sent Events response driven by a producer coroutine.

The producer gets an `emit(event, data)` and runs while the client listens; when the client
goes away (closes the tab, aborts the fetch) the producer is cancelled — that is how Studio
cancels a running tool call or agent run. A comment line every `keepalive` seconds keeps
idle streams open through proxies. Written as a plain ASGI response rather than an async
generator: a generator cannot own the task group that runs the work and stay cancellable.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from workbench.core import logger

Emit = Callable[[str, Any], Awaitable[None]]
Producer = Callable[[Emit], Awaitable[None]]


def encode(event: str, data: Any) -> bytes:
    """One SSE event; the JSON is on one line, so no `data:` splitting is needed."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class EventStream(Response):
    """A `Response` to Starlette's routing (an endpoint may return it); it writes its own messages."""

    media_type = "text/event-stream"

    def __init__(self, producer: Producer, *, keepalive: float = 15.0,
                 on_close: Callable[[], None] | None = None) -> None:
        self.producer = producer
        self.keepalive = keepalive
        self.on_close = on_close
        """Runs once the response is over, however it ended (even if the producer never started)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._stream(receive, send)
        finally:
            if self.on_close is not None:
                self.on_close()

    async def _stream(self, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"x-accel-buffering", b"no"),  # nginx: pass events on as they come
        ]})
        lock = anyio.Lock()

        async def write(chunk: bytes) -> None:
            async with lock:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

        async def emit(event: str, data: Any) -> None:
            await write(encode(event, data))

        async with anyio.create_task_group() as tg:

            async def until_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                tg.cancel_scope.cancel()

            async def keep_alive() -> None:
                while True:
                    await anyio.sleep(self.keepalive)
                    await write(b": keepalive\n\n")

            async def produce() -> None:
                try:
                    await self.producer(emit)
                except Exception as e:  # the stream is the only channel left to say so; never a traceback
                    logger.exception("studio event stream failed")
                    await emit("error", {"message": f"{type(e).__name__}: {e}"})
                finally:
                    tg.cancel_scope.cancel()

            tg.start_soon(until_disconnect)
            tg.start_soon(keep_alive)
            tg.start_soon(produce)
        with anyio.CancelScope(shield=True), anyio.move_on_after(1):
            try:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:  # the client is gone already
                pass
