"""What the tool-call lanes (`servers.call_lane`, `servers.session_lane`) share: the SDK's check of a
call's params (`call_params`), and how they answer a call they run:
one JSON-RPC message, serialised once, written straight to the ASGI `send`; and a watch over the
running call for the client hanging up (which cancels it) and for the keepalive window (past
it in silence, the response commits to an SSE stream with pings, so a proxy's idle timeout
cannot cut a long call — as the SDK's transports do).

Most calls end within milliseconds, so the watch (a task reading `receive`) starts only when a
call outlives `FIRST_WAIT`: a task per call would cost more than the rest of a lane's work on
it, and a hang-up is still noticed within that wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import anyio
import mcp.types as mt
from mcp.server._streamable_http_modern import _SSE_PING_INTERVAL
from mcp_types import RequestId
from mcp_types import methods as wire_methods
from pydantic import ValidationError
from pydantic_core import to_json
from starlette.types import Receive, Send

FIRST_WAIT = 0.05
"""Seconds a call runs before its watch starts."""
KEEPALIVE = _SSE_PING_INTERVAL
"""Seconds of silence after which a response commits to SSE and pings (the SDK's window)."""
Headers = Sequence[tuple[bytes, bytes]]


def call_params(protocol_version: str, raw_params: dict[str, Any]) -> mt.CallToolRequestParams | None:
    """`tools/call` params as the SDK checks them — the version's wire surface, then the handler's
    model — or None where it would refuse them (the lane then leaves the request to the SDK)."""
    try:
        wire_methods.validate_client_request("tools/call", protocol_version, raw_params)
        return mt.CallToolRequestParams.model_validate(raw_params, by_name=False)
    except (ValidationError, ValueError, KeyError):
        return None


def response_json(request_id: RequestId, result: dict[str, Any]) -> bytes:
    """The JSON-RPC response as the SDK serialises it (its `exclude_none`/`exclude_unset` reach only
    the envelope, never into `result`; NaN and infinities as Python's `json` writes them), in one pass."""
    return to_json({"jsonrpc": "2.0", "id": request_id, "result": result}, inf_nan_mode="constants")


def sse_frame(message: bytes) -> bytes:
    """One JSON-RPC message as an SSE `message` event, as both SDK transports frame it."""
    return b"event: message\r\ndata: %s\r\n\r\n" % message


class CallWatch:
    """A running call's reply channel: the watch (once started) and the writes before the final one.

    `sse_headers` are what the response starts with once it commits to an event stream."""

    def __init__(self, receive: Receive, send: Send, call: anyio.CancelScope, sse_headers: Headers) -> None:
        self.receive = receive
        self.send = send
        self.call = call
        self.sse_headers = list(sse_headers)
        self.committed = False
        """Whether the response has started, as an event stream."""
        self.hung_up = False
        """Whether the call was cancelled because the client left."""
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._writing = asyncio.Lock()  # `stop` never cuts a write in half
        self._timer = asyncio.get_running_loop().call_later(FIRST_WAIT, self._start)

    def _start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() - FIRST_WAIT + KEEPALIVE  # the window counts from the call's start
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    message = await self.receive()
            except TimeoutError:
                await self.emit(b": ping\r\n\r\n")
                deadline = loop.time() + KEEPALIVE
                continue
            if message["type"] == "http.disconnect":
                self.hung_up = True
                self.call.cancel()
                return

    async def emit(self, event: bytes) -> None:
        """Write `event` (SSE bytes) before the answer, committing the response to SSE first; dropped once
        the answer is on its way (work the call started, a background job, may outlive it)."""
        async with self._writing:
            if self._stopped:
                return
            if not self.committed:
                await self.send({"type": "http.response.start", "status": 200, "headers": self.sse_headers})
                self.committed = True
            await self.send({"type": "http.response.body", "body": event, "more_body": True})

    async def stop(self) -> bool:
        """Stop watching; whether the response has committed to SSE. From here on nothing is written
        but the answer; a write already under way is let finish first."""
        self._timer.cancel()
        self._stopped = True
        task = self._task
        if task is not None:
            try:
                async with self._writing:
                    pass
            finally:  # even if this task is being cancelled itself: the watch never outlives its call
                task.cancel()
            await asyncio.wait([task])  # not `await task`: that would raise its CancelledError here
        return self.committed

    async def finish(self, event: bytes) -> None:
        """The last event of a response that has committed to SSE."""
        await self.send({"type": "http.response.body", "body": event, "more_body": False})


async def send_whole(send: Send, status: int, headers: Headers, body: bytes) -> None:
    """A response known whole: its length first, as Starlette's `Response` puts it, then `headers`."""
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", b"%d" % len(body)), *headers]})
    await send({"type": "http.response.body", "body": body})
