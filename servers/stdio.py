"""Serving over stdio: one client (the process that started us), either protocol era."""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import IO

import anyio
import anyio.from_thread
import anyio.lowlevel
from mcp.server.stdio import stdio_server

from servers.mcp_server import WorkbenchServer


class _Lines:
    """stdin as async lines, read by a daemon thread. anyio's `wrap_file` reads on a worker
    thread that shutdown must wait for, so a client holding stdin open would keep the
    process alive after SIGTERM; a daemon thread blocked on a read does not."""

    def __init__(self, fp: IO[str]) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[str](16)
        token = anyio.lowlevel.current_token()
        threading.Thread(target=self._pump, args=(fp, token), name="stdin-reader", daemon=True).start()

    def _pump(self, fp: IO[str], token: anyio.lowlevel.EventLoopToken) -> None:
        try:
            for line in iter(fp.readline, ""):
                anyio.from_thread.run(self._send.send, line, token=token)
        except Exception:  # the event loop or the stream is gone: we are shutting down
            return
        with contextlib.suppress(Exception):
            anyio.from_thread.run_sync(self._send.close, token=token)

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None


@asynccontextmanager
async def _claimed_stdin() -> AsyncIterator[_Lines]:
    """Read the protocol from a private copy of fd 0 and point fd 0 at /dev/null, so tools and
    their children cannot swallow protocol bytes."""
    private = os.dup(0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    try:
        yield _Lines(os.fdopen(private, "r", encoding="utf-8", errors="replace", closefd=False))
    finally:
        os.dup2(private, 0)


async def serve_stdio(server: WorkbenchServer) -> None:
    """Serve until stdin closes (or the caller cancels); the client's session ends with it."""
    server.stdio_session_id = f"stdio-{uuid.uuid4().hex[:12]}"
    server.sessions.touch(server.stdio_session_id, stateless=False)
    async with server.running(), _claimed_stdin() as lines, stdio_server(stdin=lines) as (read, write):  # type: ignore[arg-type]  # the SDK wants an AsyncFile; it only iterates lines, as _Lines does
        await server.server.run(read, write, server.server.create_initialization_options())
