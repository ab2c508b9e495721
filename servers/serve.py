"""`serve_workbench`: run until told to stop, then stop gracefully.

On SIGTERM or SIGINT the server drains: `/readyz` turns 503, new calls are refused,
running calls get `shutdown_grace` seconds to finish (their results are delivered), the
rest are cancelled with an `isError` result, every client session is closed
(`workbench.close_session`), and the function returns — the caller then stops the
workbench, which removes sandbox containers. A second signal skips the wait.
"""

from __future__ import annotations

import errno
import signal
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import anyio

from servers.http import StudioFactory, create_app
from servers.listener import http_listener
from servers.logs import configure_json_logging
from servers.mcp_server import WorkbenchServer
from servers.settings import ServeError, ServeSettings
from servers.stdio import serve_stdio
from workbench.core import Workbench, logger


async def _on_signals(
    drain: Callable[[], Coroutine[Any, Any, None]], force: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    """First SIGTERM/SIGINT: drain. Another one: cancel the running calls now."""
    try:
        receiver = anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT)
        signals = receiver.__enter__()
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread: the embedder handles signals
        await anyio.sleep_forever()
        return
    try:
        async with anyio.create_task_group() as tg:
            draining = False
            async for sig in signals:
                logger.info("shutting down", extra={"signal": signal.Signals(sig).name})
                if draining:
                    logger.warning("second signal: cancelling running calls now")
                    await force()
                else:
                    draining = True
                    tg.start_soon(drain)
    finally:
        receiver.__exit__(None, None, None)


async def serve_workbench(
    workbench: Workbench, settings: ServeSettings, *, studio: StudioFactory | None = None
) -> None:
    """Serve `workbench` (already started by the caller) over stdio or streamable HTTP until
    stdin closes or SIGTERM/SIGINT; returns after a graceful shutdown. Over HTTP, `studio`
    builds the `/ui` console (`servers.studio`)."""
    settings.check()
    if settings.log_json:
        configure_json_logging()
    if settings.transport == "stdio":
        await _serve_stdio(WorkbenchServer(workbench, settings), settings)
    else:
        await _serve_http(workbench, settings, studio)


async def _serve_stdio(server: WorkbenchServer, settings: ServeSettings) -> None:
    async with anyio.create_task_group() as tg:

        async def drain() -> None:
            await server.drain(settings.shutdown_grace)
            await anyio.sleep(0.1)  # the last answers are still on their way to stdout
            tg.cancel_scope.cancel()

        async def force() -> None:
            await server.cancel_calls()
            tg.cancel_scope.cancel()

        tg.start_soon(_on_signals, drain, force)
        await serve_stdio(server)
        tg.cancel_scope.cancel()


def _bind(settings: ServeSettings) -> socket.socket:
    """The listening socket, bound here rather than by uvicorn: a port in use is one clear error,
    not uvicorn's log lines and a `SystemExit`."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    try:
        sock = socket.create_server((settings.host, settings.port), family=family, backlog=2048)
    except OSError as e:
        why = e.strerror
        if e.errno == errno.EADDRINUSE:
            why = "another process listens there (is the port in use by an earlier server?); choose another: --port"
        raise ServeError(f"cannot serve on {settings.host}:{settings.port}: {why}") from None
    # asyncio turns Nagle off only on sockets whose proto is IPPROTO_TCP, and `create_server` makes
    # them with proto 0, so accepted connections kept Nagle: a response's head and body go out in
    # two sends, and the body waited for the client's delayed ACK (~40 ms on every call). Accepted
    # sockets inherit TCP_NODELAY from the listener.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


async def _serve_http(
    workbench: Workbench, settings: ServeSettings, studio: StudioFactory | None
) -> None:
    with _bind(settings) as sock:
        app = create_app(workbench, settings, studio=studio)
        server: WorkbenchServer = app.state.workbench_server
        http = http_listener(app, settings)

        async def drain() -> None:
            await server.drain(settings.shutdown_grace)
            http.should_exit = True

        async def force() -> None:
            await server.cancel_calls()
            http.should_exit = True

        logger.info("serving", extra={"url": f"http://{settings.host}:{settings.port}{settings.path}",
                                      "auth": bool(settings.auth_token)})
        if studio is not None:
            logger.info("studio", extra={"url": f"http://{settings.host}:{settings.port}/ui"})
        started = True
        async with anyio.create_task_group() as tg:
            tg.start_soon(_on_signals, drain, force)
            try:
                await http.serve(sockets=[sock])
            except SystemExit:  # uvicorn exits like this when it cannot start
                started = False
            tg.cancel_scope.cancel()
    if not started:
        raise ServeError(f"cannot serve on {settings.host}:{settings.port} (see the log above)")
