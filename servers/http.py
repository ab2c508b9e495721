"""The Starlette app serving a workbench over streamable HTTP at `settings.path` (both
protocol eras), plus `/healthz` and `/readyz`.

Mount it in your own app if you like; a mounted app's lifespan does not run by itself,
so enter it from yours:

    wb_app = create_app(workbench, settings)
    @asynccontextmanager
    async def lifespan(app):
        async with wb_app.router.lifespan_context(wb_app):
            yield
    app = Starlette(routes=[Mount("/tools", wb_app)], lifespan=lifespan)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import httpx2
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from adapters.tls import tls_trust
from servers.auth import Authenticate, FirstOf, StaticTokens, Verifier
from servers.call_lane import ToolCallLane
from servers.health import health_routes
from servers.mcp_server import WorkbenchServer
from servers.oauth_resource import oauth_verifiers
from servers.rate_limit import RequestGate
from servers.settings import ServeSettings
from servers.studio.app import StudioGate
from workbench.core import Workbench

StudioFactory = Callable[[WorkbenchServer, Verifier | None], ASGIApp]
"""Builds the `/ui` console for a server, given the verifier `/mcp` uses (None: no authentication)."""


def create_app(
    workbench: Workbench, settings: ServeSettings, *,
    studio: StudioFactory | None = None,
) -> Starlette:
    """The ASGI app; its lifespan runs the MCP session manager and the server's background work.
    The workbench itself is started and stopped by the caller (`async with workbench`).
    `studio` builds the `/ui` console for the server (`servers.studio`), given the token verifier
    `/mcp` uses (None: no authentication configured), so the console lets in exactly whom `/mcp` does."""
    settings.check()
    server = WorkbenchServer(workbench, settings)
    manager = StreamableHTTPSessionManager(
        app=server.server,
        security_settings=settings.transport_security(),
        max_request_body_size=settings.max_request_bytes,
        session_idle_timeout=settings.session_idle_timeout,
        max_sessions=settings.max_sessions,
    )
    # Ordinary tool calls skip the SDK's server stack; everything else reaches it untouched.
    lane = ToolCallLane(server, StreamableHTTPASGIApp(manager), max_request_bytes=settings.max_request_bytes,
                        security=settings.transport_security(), sessions=manager)
    healthz, readyz = health_routes(server)
    # The authorization server is reached with our own client: never the one serving clients, and
    # never with a client's token (only the introspection credentials of this server).
    oauth_http = httpx2.AsyncClient(timeout=settings.oauth.http_timeout, follow_redirects=False, verify=tls_trust()) \
        if settings.oauth else None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if oauth_http is not None:
                await stack.enter_async_context(oauth_http)
            await stack.enter_async_context(server.running())
            await stack.enter_async_context(manager.run())
            yield

    async def not_found(request: Request, exc: Exception) -> Response:
        # A client pointed at the wrong URL learns the right one, not just "Not Found".
        return PlainTextResponse(
            f"Not Found: {request.url.path} is not served here. The MCP endpoint is {settings.path} "
            "(streamable HTTP); /healthz and /readyz report health.",
            status_code=404,
        )

    verifier = _verifier(settings, oauth_http)
    middleware = _authentication(settings, verifier)
    if studio is not None:  # outside Authenticate: a browser's page loads carry Studio's cookie, not a header
        middleware.insert(0, Middleware(StudioGate, studio=studio(server, verifier)))
    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            *(settings.oauth.metadata_routes(settings.server_name) if settings.oauth else []),
            Route(settings.path, methods=["GET", "POST", "DELETE"],
                  endpoint=RequestGate(server.legacy_cap.guard(lane), settings.limits.requests_per_minute)),
        ],
        middleware=middleware,
        exception_handlers={404: not_found},
        lifespan=lifespan,
    )
    app.state.workbench_server = server
    app.state.call_lane = lane
    return app


def _verifier(settings: ServeSettings, oauth_http: httpx2.AsyncClient | None) -> Verifier | None:
    """Every kind of token the settings name, in one chain (`/mcp` and Studio's login both ask it);
    None when they name none."""
    verifiers: list[Verifier] = []
    if settings.auth_token:
        verifiers.append(StaticTokens.single(settings.auth_token))
    if settings.tokens:
        verifiers.append(StaticTokens({name: t.token.get_secret_value() for name, t in settings.tokens.items()},
                                      {name: t.scopes for name, t in settings.tokens.items()}))
    if settings.oauth and oauth_http is not None:
        verifiers.extend(oauth_verifiers(settings.oauth, oauth_http))
    return FirstOf(verifiers) if verifiers else None


def _authentication(settings: ServeSettings, verifier: Verifier | None) -> list[Middleware]:
    """One middleware for every kind of token the settings name; none when they name none."""
    if verifier is None:
        return []
    oauth = settings.oauth
    return [Middleware(Authenticate, verifier=verifier,
                       required_scopes=oauth.required_scopes if oauth else [],
                       resource_metadata_url=oauth.metadata_url() if oauth else None,
                       failed_per_minute=settings.failed_auth_per_minute)]
