"""Serving over stdio: one client (the process that started us), either protocol era."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import IO

import anyio
import anyio.to_thread
from mcp.server.stdio import stdio_server

from servers.mcp_server import WorkbenchServer


class _Lines:
    """stdin as async lines, read on a worker thread that shutdown may abandon: anyio's
    `wrap_file` would wait for the blocked read, so SIGTERM could not stop the server."""

    def __init__(self, fp: IO[str]) -> None:
        self.fp = fp

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        line = await anyio.to_thread.run_sync(self.fp.readline, abandon_on_cancel=True)
        if not line:
            raise StopAsyncIteration
        return line


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
    async with server.running(), _claimed_stdin() as lines, stdio_server(stdin=lines) as (read, write):  # type: ignore[arg-type]
        await server.server.run(read, write, server.server.create_initialization_options())
