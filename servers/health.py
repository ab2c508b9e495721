"""`/healthz` (the process answers) and `/readyz` (the workbench can serve: every source's
health, 503 when it cannot or while the server drains for shutdown)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse

from servers.auth import scope_access
from servers.mcp_server import WorkbenchServer
from workbench.core import Health

Endpoint = Callable[[Request], Awaitable[JSONResponse]]


def source_health(server: WorkbenchServer) -> dict[str, Health]:
    return server.workbench.health_by_source()


def health_routes(server: WorkbenchServer) -> tuple[Endpoint, Endpoint]:
    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        overall = server.workbench.health()
        ready = overall.state == "up" and not server.draining
        body: dict[str, object] = {
            "status": "ready" if ready else ("draining" if server.draining else "not ready"),
            "sources": {k: {"state": h.state, "detail": h.detail} for k, h in source_health(server).items()},
        }
        if server.settings.authenticates and scope_access(request.scope) is None:
            # The probe is open; what is wrong inside (paths, upstream errors) is for the token holder.
            body["sources"] = {k: {"state": h.state} for k, h in source_health(server).items()}
        else:
            body.update(detail=overall.detail, sessions=len(server.sessions.sessions), inflight_calls=server.inflight)
        return JSONResponse(body, status_code=200 if ready else 503)

    return healthz, readyz
