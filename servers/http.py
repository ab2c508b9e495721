"""The Starlette app serving a workbench over streamable HTTP at `settings.path` (both
protocol eras), plus `/healthz` and `/readyz`.

Mount it in your own app if you like; a mounted app's lifespan does not run by itself,
so enter it from yours:

    wb_app = create_app(workbench, settings)
    @asynccontextmanager
    async def lifespan(app):
        async with wb_app.router.lifespan_context(wb_app):
            yield
    middleware = [Middleware(BearerAuth, token=settings.auth_token)] if settings.auth_token else []
    if studio is not None:  # outside the bearer check: a browser's page loads carry Studio's cookie, not a header
        middleware.insert(0, Middleware(StudioGate, studio=studio(server)))
    app = Starlette(routes=[Mount("/tools", wb_app)], lifespan=lifespan)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from servers.auth import BearerAuth
from servers.health import health_routes
from servers.mcp_server import WorkbenchServer
from servers.settings import ServeSettings
from servers.studio.app import StudioGate
from workbench.core import Workbench


def create_app(
    workbench: Workbench, settings: ServeSettings, *, studio: Callable[[WorkbenchServer], ASGIApp] | None = None
) -> Starlette:
    """The ASGI app; its lifespan runs the MCP session manager and the server's background work.
    The workbench itself is started and stopped by the caller (`async with workbench`).
    `studio` builds the `/ui` console for the server (`servers.studio`)."""
    settings.check()
    server = WorkbenchServer(workbench, settings)
    manager = StreamableHTTPSessionManager(
        app=server.server,
        security_settings=settings.transport_security(),
        max_request_body_size=settings.max_request_bytes,
        session_idle_timeout=settings.session_idle_timeout,
        max_sessions=settings.max_sessions,
    )
    healthz, readyz = health_routes(server)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with server.running(), manager.run():
            yield

    async def not_found(request: Request, exc: Exception) -> Response:
        # A client pointed at the wrong URL learns the right one, not just "Not Found".
        return PlainTextResponse(
            f"Not Found: {request.url.path} is not served here. The MCP endpoint is {settings.path} "
            "(streamable HTTP); /healthz and /readyz report health.",
            status_code=404,
        )

    middleware = [Middleware(BearerAuth, token=settings.auth_token)] if settings.auth_token else []
    if studio is not None:  # outside the bearer check: a browser's page loads carry Studio's cookie, not a header
        middleware.insert(0, Middleware(StudioGate, studio=studio(server)))
    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route(settings.path, endpoint=server.legacy_cap.guard(StreamableHTTPASGIApp(manager)),
                  methods=["GET", "POST", "DELETE"]),
        ],
        middleware=middleware,
        exception_handlers={404: not_found},
        lifespan=lifespan,
    )
    app.state.workbench_server = server
    return app
