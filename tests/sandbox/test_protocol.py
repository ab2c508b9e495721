"""The host trusts no frame: `SupervisorChannel` against a hostile peer on a real socket.

The peer plays a container whose supervisor has been subverted: it speaks Docker's attach
framing (8-byte headers) but sends oversized, malformed, unasked-for or misshapen replies.
Each must end in `SandboxProtocolError` without the host buffering what the peer announces.
"""

from __future__ import annotations

import json
import struct
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest

from sandbox.channel import SupervisorChannel
from sandbox.errors import SandboxProtocolError
from sandbox.protocol import max_reply_bytes

pytestmark = pytest.mark.anyio

RUN_BOUND = max_reply_bytes("run", 65536, 16 << 20)
GOOD_RUN = {"stdout": "1\n", "stderr": "", "exit_code": 0, "timed_out": False, "cancelled": False,
            "oom_killed": False, "stdout_bytes": 2, "stderr_bytes": 0, "truncated": False, "duration": 0.001,
            "notes": []}

Peer = Callable[[anyio.abc.SocketStream, dict], Awaitable[None]]
"""Gets the socket and the first request the host sent; answers however it likes."""


def docker_frame(payload: bytes, stream: int = 1) -> bytes:
    return bytes([stream, 0, 0, 0]) + struct.pack(">I", len(payload)) + payload


def reply(body: dict | bytes) -> bytes:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return docker_frame(struct.pack(">I", len(data)) + data)


async def read_request(sock: anyio.abc.SocketStream) -> dict:
    buf = b""
    while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
        buf += await sock.receive()
    return json.loads(buf[4:])


@asynccontextmanager
async def channel_to(peer: Peer) -> AsyncIterator[SupervisorChannel]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def serve(sock: anyio.abc.SocketStream) -> None:
        async with sock:
            try:
                await peer(sock, await read_request(sock))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, ConnectionError):
                pass  # the host hung up on us: what a defended host does

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        stream = await anyio.connect_tcp("127.0.0.1", port)
        channel = SupervisorChannel(stream, "0" * 64)
        try:
            yield channel
        finally:
            await channel.aclose()
            tg.cancel_scope.cancel()


async def run_request(channel: SupervisorChannel) -> dict:
    return await channel.request("run", 10, RUN_BOUND, lang="python", code="print(1)", timeout=5, limit=65536)


async def test_a_well_formed_reply_is_accepted() -> None:
    async def peer(sock: anyio.abc.SocketStream, req: dict) -> None:
        await sock.send(reply({"id": req["id"], **GOOD_RUN}))
        await anyio.sleep(1)

    async with channel_to(peer) as channel:
        assert (await run_request(channel))["stdout"] == "1\n"


async def test_a_two_gigabyte_frame_is_refused_before_it_is_buffered() -> None:
    sent = 0

    async def peer(sock: anyio.abc.SocketStream, req: dict) -> None:
        nonlocal sent
        await sock.send(docker_frame(struct.pack(">I", 2**31) + b"x" * 1000))
        chunk = docker_frame(b"y" * (1 << 20))
        with anyio.move_on_after(5):
            while sent < 64 << 20:  # the peer would go on to 2 GB; 64 MiB makes the point
                await sock.send(chunk)
                sent += len(chunk)

    tracemalloc.start()
    try:
        async with channel_to(peer) as channel:
            with anyio.fail_after(5), pytest.raises(SandboxProtocolError, match="announced 2147483648 bytes"):
                await run_request(channel)
            assert channel.closed
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"the host buffered {peak} bytes of what the container sent"


async def test_a_docker_frame_announcing_gigabytes_is_streamed_not_held() -> None:
    """One docker frame header for 1 GiB: its payload is routed as it comes, so the reply inside
    it is answered without waiting for (or holding) the rest."""

    async def peer(sock: anyio.abc.SocketStream, req: dict) -> None:
        body = json.dumps({"id": req["id"], **GOOD_RUN}).encode()
        await sock.send(bytes([1, 0, 0, 0]) + struct.pack(">I", 1 << 30) + struct.pack(">I", len(body)) + body)
        await anyio.sleep(5)

    async with channel_to(peer) as channel:
        with anyio.fail_after(3):
            assert (await run_request(channel))["exit_code"] == 0


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        (lambda rid: b"{not json", "not JSON"),
        (lambda rid: {"id": rid + 7, **GOOD_RUN}, "never asked"),
        (lambda rid: {"id": str(rid), **GOOD_RUN}, "request id"),
        (lambda rid: {"id": rid, **{k: v for k, v in GOOD_RUN.items() if k != "timed_out"}}, "timed_out"),
        (lambda rid: {"id": rid, **GOOD_RUN, "stdout_bytes": -5}, "stdout_bytes"),
        (lambda rid: {"id": rid, **GOOD_RUN, "exit_code": "0"}, "exit_code"),
        (lambda rid: {"id": rid, **GOOD_RUN, "extra": 1}, "extra"),
        (lambda rid: [rid], "request id"),
    ],
    ids=["not-json", "unasked-id", "string-id", "missing-field", "negative-count", "wrong-type", "extra-field",
         "not-an-object"],
)
async def test_a_malformed_reply_is_a_protocol_error(frame: Callable[[int], object], error: str) -> None:
    async def peer(sock: anyio.abc.SocketStream, req: dict) -> None:
        body = frame(req["id"])
        await sock.send(reply(body if isinstance(body, (bytes, dict)) else json.dumps(body).encode()))
        await anyio.sleep(5)

    async with channel_to(peer) as channel:
        with anyio.fail_after(3), pytest.raises(SandboxProtocolError, match=error):
            await run_request(channel)


async def test_an_unknown_docker_stream_id_is_a_protocol_error() -> None:
    async def peer(sock: anyio.abc.SocketStream, req: dict) -> None:
        await sock.send(docker_frame(b"hello", stream=7))
        await anyio.sleep(5)

    async with channel_to(peer) as channel:
        with anyio.fail_after(3), pytest.raises(SandboxProtocolError, match="unknown stream id 7"):
            await run_request(channel)


async def test_stderr_noise_is_bounded_and_a_late_reply_to_a_cancelled_request_is_dropped() -> None:
    async def peer(sock: anyio.abc.SocketStream, first: dict) -> None:
        await sock.send(docker_frame(b"e" * (4 << 20), stream=2))  # supervisor stderr: only a tail is kept
        cancel = await read_request(sock)
        assert cancel == {"op": "cancel", "target": first["id"]}
        second = await read_request(sock)
        await sock.send(reply({"id": first["id"], **GOOD_RUN, "stdout": "late\n"}))
        await sock.send(reply({"id": second["id"], **GOOD_RUN}))
        await anyio.sleep(5)

    async with channel_to(peer) as channel:
        with anyio.move_on_after(0.5):
            await run_request(channel)
        with anyio.fail_after(3):
            assert (await run_request(channel))["stdout"] == "1\n"
        assert len(channel._stderr_tail) <= 4000
