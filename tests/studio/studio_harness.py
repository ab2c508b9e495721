"""Helpers of the Studio tests (imported as `studio_harness`): a workbench served in this event
loop with Studio mounted at /ui, and an httpx2 client for its API — fast, and the test can reach
into the server."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2

from servers import ServeSettings, WorkbenchServer, create_app
from servers.http import StudioFactory
from servers.listener import http_listener
from servers.studio import StudioContext, studio_app
from workbench import Workbench


@dataclass
class StudioServer:
    base: str
    """http://127.0.0.1:PORT"""
    token: str
    log: Path
    config: Path
    """The config file it serves: a copy of examples/workbench.toml."""

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class StudioHttp:
    http: httpx2.AsyncClient
    """Based at the server's root; sends no credentials unless a test gives them."""
    server: WorkbenchServer
    token: str | None

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


@asynccontextmanager
async def studio_http(
    workbench: Workbench, *, token: str | None = "studio-test-token", context: dict[str, Any] | None = None,
    studio: StudioFactory | None = None, **settings: Any,
) -> AsyncIterator[StudioHttp]:
    """`workbench` served over real HTTP on a free loopback port, Studio mounted at /ui (built by
    `studio`, or from a `StudioContext` with the `context` fields)."""
    settings.setdefault("port", free_port())
    serve = ServeSettings(transport="http", host="127.0.0.1", auth_token=token, log_json=False, **settings)
    app = create_app(workbench, serve,
                     studio=studio or (lambda server, verifier: studio_app(
                         StudioContext(server, verifier=verifier, **(context or {})))))
    listener = http_listener(app, serve)
    async with workbench, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve)
        with anyio.fail_after(10):
            while not listener.started:
                await anyio.sleep(0.01)
        base = f"http://127.0.0.1:{serve.port}"
        try:
            async with httpx2.AsyncClient(base_url=base, timeout=httpx2.Timeout(30)) as http:
                yield StudioHttp(http, app.state.workbench_server, token)
        finally:
            listener.should_exit = True
