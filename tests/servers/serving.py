"""Helpers for the servers tests (imported as `serving`, a name no other test folder uses): a
workbench served over real HTTP (uvicorn on a free 127.0.0.1 port, in this event loop) and real
MCP clients pointed at it."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from servers import ServeSettings, WorkbenchServer, create_app
from servers.listener import http_listener
from workbench import Workbench

HERE = Path(__file__).parent
SCRIPT = HERE / "serve_script.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    def __init__(self, url: str, server: WorkbenchServer) -> None:
        self.url = url
        self.base = url.rsplit("/", 1)[0]
        self.server = server


@asynccontextmanager
async def serving(
    workbench: Workbench, settings: ServeSettings | None = None, *, port: int | None = None
) -> AsyncIterator[Served]:
    """`workbench` served over streamable HTTP for the duration of the block."""
    settings = settings or ServeSettings(transport="http")
    settings.host = "127.0.0.1"
    settings.port = port or free_port()
    settings.log_json = False
    app = create_app(workbench, settings)
    http = http_listener(app, settings)  # uvicorn exactly as `workbench serve` runs it
    async with workbench, anyio.create_task_group() as tg:
        tg.start_soon(http.serve)
        with anyio.fail_after(10):
            while not http.started:
                await anyio.sleep(0.01)
        try:
            yield Served(f"http://127.0.0.1:{settings.port}{settings.path}", app.state.workbench_server)
        finally:
            http.should_exit = True


@asynccontextmanager
async def http_client(
    url: str, *, mode: str = "auto", headers: dict[str, str] | None = None, **kwargs: Any
) -> AsyncIterator[Client]:
    """An SDK `Client` over streamable HTTP with extra request headers (e.g. Authorization)."""
    async with httpx2.AsyncClient(headers=headers or {}, timeout=httpx2.Timeout(30, read=60)) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode, **kwargs) as client:  # type: ignore[arg-type]
            yield client


def script_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent.parent), str(HERE), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def sandbox_workbench_or_skip(**settings: object) -> Workbench:
    """A `SandboxWorkbench` with `settings`, or a skip when no engine or image is there (under
    CI=true, tests/conftest.py fails the run before that)."""
    from sandbox import SandboxSettings, SandboxWorkbench
    from sandbox.container import docker_client
    from sandbox.errors import EngineUnavailableError
    from sandbox.image import image_exists

    try:
        client = docker_client()
    except EngineUnavailableError as e:
        pytest.skip(f"no Docker engine: {e}")
    if not image_exists(client):
        pytest.skip("sandbox image missing: run `workbench sandbox build`")
    return SandboxWorkbench(SandboxSettings(**settings))  # type: ignore[arg-type]  # test-chosen fields


async def until_closed(stream: anyio.abc.ByteStream, seconds: float = 5) -> bytes:
    """Everything the server sends on a raw connection until it closes it; fails after `seconds`."""
    answer = b""
    with anyio.fail_after(seconds):
        try:
            while chunk := await stream.receive():
                answer += chunk
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass
    return answer
