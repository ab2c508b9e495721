"""The one long-lived stream between the host and a container's supervisor.

Docker's attach endpoint, spoken directly over the engine's socket (the `docker` SDK is
sync and would cost a thread hop per run): an HTTP request upgraded to a raw stream that
carries our stdin one way and the container's multiplexed stdout/stderr the other. On top
of that, each message is a 4-byte big-endian length and a JSON body.

Requests on one channel are serialized; a response always carries its request's `id`, so
a late answer to a cancelled request is recognised and dropped by whoever reads next. Nothing
the container sends is trusted: docker's frames are split as they stream (never buffered
whole), each reply's length is checked against its op's bound before it is buffered, and its
shape against the op's model (`sandbox.protocol`); any breach raises `SandboxProtocolError`.
"""

from __future__ import annotations

import itertools
import json
import os
import struct
from typing import Any
from urllib.parse import urlparse

import anyio
import anyio.abc

from sandbox.errors import EngineUnavailableError, SandboxCrashedError, SandboxProtocolError
from sandbox.protocol import decode_frame, validate_reply

STDOUT, STDERR = 1, 2
"""Docker's stream ids in the attach stream's 8-byte frame headers."""


def docker_endpoint() -> tuple[str, str | int]:
    """('unix', path) or (host, port) from DOCKER_HOST, defaulting to the local socket."""
    url = urlparse(os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock")
    if url.scheme == "unix":
        return "unix", url.path
    if url.scheme in ("tcp", "http"):
        return url.hostname or "127.0.0.1", url.port or 2375
    raise EngineUnavailableError(f"DOCKER_HOST={url.geturl()!r} is not supported by the sandbox (use unix:// or tcp://)")


class SupervisorChannel:
    """Length-prefixed JSON requests to a container's supervisor over its attach stream."""

    def __init__(self, stream: anyio.abc.ByteStream, container_id: str) -> None:
        self._stream = stream
        self._container_id = container_id
        self._raw = bytearray()  # bytes of docker's stream not yet routed (at most one 8-byte header)
        self._kind = STDOUT  # the docker frame being read, and how much of its payload is still to come
        self._left = 0
        self._out = bytearray()  # the supervisor's stdout: our response frames
        self._limit = 0  # the largest reply frame the request in progress may get
        self._abandoned: dict[int, int] = {}  # cancelled requests whose late answers may still come: their bounds
        self._stderr_tail = bytearray()  # the supervisor's own complaints, for crash reports
        self._ids = itertools.count(1)
        self._lock = anyio.Lock()
        self.closed = False

    @classmethod
    async def attach(cls, container_id: str, api_version: str) -> SupervisorChannel:
        host, where = docker_endpoint()
        try:
            stream: anyio.abc.ByteStream = (
                await anyio.connect_unix(str(where)) if host == "unix" else await anyio.connect_tcp(host, int(where))
            )
        except OSError as e:
            raise EngineUnavailableError.from_os_error(e) from e
        request = (
            f"POST /v{api_version}/containers/{container_id}/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\n"
            "Host: docker\r\nUpgrade: tcp\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n"
        )
        await stream.send(request.encode())
        head = bytearray()
        while b"\r\n\r\n" not in head:
            chunk = await stream.receive(65536)
            head += chunk
        header, _, rest = bytes(head).partition(b"\r\n\r\n")
        status = header.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" " and b" 200 " not in status + b" ":
            await stream.aclose()
            raise SandboxCrashedError(
                f"attaching to container {container_id[:12]} failed: {status.decode(errors='replace')}")
        channel = cls(stream, container_id)
        channel._raw += rest
        return channel

    async def request(self, op: str, wait: float | None, max_reply: int, **fields: Any) -> dict[str, Any]:
        """Send one request and wait for its response, validated against `op`'s model; a reply
        frame over `max_reply` bytes is refused before it is read. Cancelling the caller tells
        the supervisor to stop that request (killing its processes) before re-raising."""
        async with self._lock:
            if self.closed:
                raise SandboxCrashedError(self._crash_message())
            request_id = next(self._ids)
            body = json.dumps({"op": op, "id": request_id, **fields}).encode()
            self._limit = max([max_reply, *self._abandoned.values()])
            try:
                await self._stream.send(struct.pack(">I", len(body)) + body)
                with anyio.fail_after(wait):
                    while True:
                        response = await self._next_response()
                        if response["id"] == request_id:
                            return validate_reply(op, response)
                        if response["id"] not in self._abandoned:
                            raise SandboxProtocolError(f"a reply to request {response['id']}, which was never asked")
                        del self._abandoned[response["id"]]
            except anyio.get_cancelled_exc_class():
                with anyio.CancelScope(shield=True):
                    await self.cancel(request_id)
                raise
            except TimeoutError:
                await self.cancel(request_id)
                raise
            except SandboxProtocolError:
                self.closed = True  # the container is compromised: nothing more is read from it
                raise

    async def cancel(self, request_id: int) -> None:
        self._abandoned[request_id] = self._limit
        body = json.dumps({"op": "cancel", "target": request_id}).encode()
        try:
            await self._stream.send(struct.pack(">I", len(body)) + body)
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.closed = True

    async def _next_response(self) -> dict[str, Any]:
        while True:
            if len(self._out) >= 4:
                size = struct.unpack(">I", self._out[:4])[0]
                if size > self._limit:  # refused before a byte of it is buffered
                    raise SandboxProtocolError(f"a reply frame announced {size} bytes, more than the "
                                               f"{self._limit} this request can produce")
                if len(self._out) >= 4 + size:
                    body = bytes(self._out[4 : 4 + size])
                    del self._out[: 4 + size]
                    return decode_frame(body)
            await self._fill()

    async def _fill(self) -> None:
        """Read more from the socket and route docker's 8-byte-headed stream frames as they
        stream: a payload is never held whole, so its announced size costs no memory."""
        try:
            chunk = await self._stream.receive(1 << 16)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            self.closed = True
            raise SandboxCrashedError(self._crash_message()) from None
        self._raw += chunk
        while self._raw:
            if self._left == 0:
                if len(self._raw) < 8:
                    return
                self._kind, self._left = self._raw[0], struct.unpack(">I", self._raw[4:8])[0]
                del self._raw[:8]
                if self._kind not in (STDOUT, STDERR):
                    raise SandboxProtocolError(f"the attach stream carried an unknown stream id {self._kind}")
                continue
            payload = bytes(self._raw[: self._left])
            del self._raw[: len(payload)]
            self._left -= len(payload)
            if self._kind == STDOUT:
                self._out += payload
                if len(self._out) >= 4 and len(self._out) > 4 + self._limit:
                    return  # over the bound: _next_response refuses the frame without reading on
            else:
                self._stderr_tail = (self._stderr_tail + payload)[-4000:]

    def _crash_message(self) -> str:
        tail = self._stderr_tail.decode(errors="replace").strip()
        return f"the sandbox container {self._container_id[:12]} stopped answering" + (f": {tail}" if tail else "")

    async def aclose(self) -> None:
        self.closed = True
        with anyio.CancelScope(shield=True):
            await self._stream.aclose()
