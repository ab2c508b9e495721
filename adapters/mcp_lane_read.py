"""Reading an untrusted upstream's HTTP answer within bounds: a whole body (`read_all`), or an
SSE stream event by event (`SseStream`), each refused with `UpstreamProtocolError` past its limit
before the excess is buffered. Used by the upstream lane (`adapters.mcp_lane`)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import anyio
from mcp.client.streamable_http import DEFAULT_MAX_SSE_EVENT_SIZE

from adapters.http_keepalive import DRAIN_BYTES, DRAIN_SECONDS, MAX_RESPONSE_BYTES
from workbench.core import WorkbenchError

MAX_EVENT_BYTES = DEFAULT_MAX_SSE_EVENT_SIZE
"""One SSE event: the SDK's own bound (1 MiB), so the lane refuses no event the SDK would take."""
MAX_RETRY_MS = 30_000
"""The longest wait between resumptions an upstream's `retry:` field can ask for."""

_EOL = re.compile(rb"[\r\n]")

class UpstreamProtocolError(WorkbenchError):
    """The upstream answered with something no MCP server may send (malformed, oversized, another
    request's id); the call failed, the message says how."""

    def __init__(self, what: str) -> None:
        super().__init__(f"the server {what}")


async def drain(response: aiohttp.ClientResponse) -> None:
    """Read what is left of an answered SSE stream (normally just its end) within small bounds,
    so its connection goes back to the pool instead of being closed (see `adapters.http_keepalive`).
    What has arrived already is taken without a wait (and without a timer)."""
    content = response.content
    left = DRAIN_BYTES - len(content.read_nowait())
    if content.is_eof() or left <= 0:
        return
    with anyio.move_on_after(DRAIN_SECONDS):
        while left > 0 and (chunk := await content.readany()):
            left -= len(chunk)


async def read_all(response: aiohttp.ClientResponse) -> bytes:
    """The whole body, refused past `MAX_RESPONSE_BYTES` before it is all buffered."""
    length = response.content_length
    if length is not None and length > MAX_RESPONSE_BYTES:
        raise UpstreamProtocolError(f"announced a {length}-byte answer; the limit is {MAX_RESPONSE_BYTES} bytes")
    content = response.content
    if content.is_eof():  # all of it came with the head, as a small answer does: no wait, no iterator
        whole = content.read_nowait()
        if len(whole) > MAX_RESPONSE_BYTES:
            raise UpstreamProtocolError(f"sent more than {MAX_RESPONSE_BYTES} bytes; the answer was cut off there")
        return whole
    body = bytearray()
    async for chunk in content.iter_any():
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            raise UpstreamProtocolError(f"sent more than {MAX_RESPONSE_BYTES} bytes; the answer was cut off there")
    return bytes(body)


class SseStream:
    """One call's event stream, across resumptions: the last event id and retry delay it named,
    and the bytes read so far. Parsed incrementally by WHATWG event-stream rules (a field per
    line, `data` lines joined, a blank line ends an event, `:` starts a comment) within
    `MAX_EVENT_BYTES` per event and `MAX_RESPONSE_BYTES` in all."""

    def __init__(self) -> None:
        self.last_event_id: str | None = None
        self.retry_ms: int | None = None
        self.response: aiohttp.ClientResponse | None = None
        self._read = 0

    async def messages(self, response: aiohttp.ClientResponse) -> AsyncGenerator[bytes]:
        """The `data` of each `message` event of `response`."""
        buffer = bytearray()
        event, data = "message", bytearray()
        async for chunk in response.content.iter_any():
            self._read += len(chunk)
            if self._read > MAX_RESPONSE_BYTES:
                raise UpstreamProtocolError(f"sent more than {MAX_RESPONSE_BYTES} bytes on the SSE stream "
                                            "without answering the call")
            buffer += chunk
            start = 0  # of the next line: the lines read are cut off once per chunk, not once per line
            while (end := _line_end(buffer, start)) is not None:
                line = bytes(buffer[start:end])
                start = end + (2 if buffer[end:end + 2] == b"\r\n" else 1)
                if not line:
                    if len(data) > 1 and event == "message":  # an empty one primes resumption only
                        yield bytes(data[:-1])  # without the last data line's newline
                    event, data = "message", bytearray()
                    continue
                name, _, value = line.partition(b":")
                value = value[1:] if value.startswith(b" ") else value
                if name == b"data":
                    data += value + b"\n"
                elif name == b"event":
                    event = value.decode("utf-8", "replace")
                elif name == b"id" and b"\0" not in value:
                    self.last_event_id = value.decode("utf-8", "replace")
                elif name == b"retry" and value.isdigit():  # int() refuses > 4300 digits: cap by length first
                    self.retry_ms = min(int(value), MAX_RETRY_MS) if len(value) <= 9 else MAX_RETRY_MS
            del buffer[:start]
            if len(buffer) + len(data) > MAX_EVENT_BYTES:  # an event's lines so far, or one endless line
                raise UpstreamProtocolError(f"sent an SSE event larger than {MAX_EVENT_BYTES} bytes")


def _line_end(buffer: bytearray, start: int) -> int | None:
    """Where the line at `start` ends (`\\n`, `\\r\\n` or `\\r`), or None if it does not yet; a
    trailing `\\r` waits for the next byte, which may be its `\\n`. One search for either byte:
    searching for each apart rescans the rest of the buffer for the other on every line, quadratic
    in a chunk of short lines (a hostile upstream's 256 KiB of bare `\\n` held the event loop 0.6 s)."""
    found = _EOL.search(buffer, start)
    if found is None:
        return None
    end = found.start()
    return end if buffer[end] == 0x0A or end + 1 < len(buffer) else None


def json_of(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # deep nesting raises RecursionError, as the SDK's server notes
        raise UpstreamProtocolError(f"sent a malformed JSON {what}: {clip(raw)}") from None


def clip(value: Any, limit: int = 200) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes | bytearray) else repr(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} chars)"
