"""`/healthz` (the process answers) and `/readyz` (the workbench can serve: every source's
health, 503 when it cannot or while the server drains for shutdown), and each source's health
as one caller may see it (Studio shows it too).

A source's own health may count its whole catalog ("5 tools, protocol 2025-11-25": an MCP
server's), which can hold tools a caller never sees — the policy's, `expose`'s or the mount's
excluded ones. What a caller is shown counts the source's tools in that caller's listing, or
no tools at all where the listing is not at hand (a probe lists nothing: it must stay cheap).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse

from servers.auth import scope_access
from servers.mcp_server import WorkbenchServer
from workbench.composite import CompositeWorkbench
from workbench.core import ToolSpec

Endpoint = Callable[[Request], Awaitable[JSONResponse]]
SourceHealth = dict[str, dict[str, str]]
"""Source name → {"state", "detail"}, as the API answers carry it."""

_TOOL_COUNT = re.compile(r"^\d+ tools?(?:, |$)")
"""The count a source's detail begins with (`adapters.mcp.McpWorkbench.health`)."""


def sources_seen(server: WorkbenchServer, listed: Sequence[ToolSpec] | None) -> SourceHealth:
    """Each source's state and detail for a caller whose tool listing is `listed` (None: not
    at hand): a count in the detail becomes the number of that source's tools in the listing,
    or is left out."""
    workbench = server.workbench
    counts: Counter[str] = Counter()
    mounted: Collection[str] = ()
    if listed is not None and isinstance(workbench, CompositeWorkbench):
        routes = workbench.catalog.routes  # exposed name → source; `expose` and the policy keep names
        counts.update(route.source for spec in listed if (route := routes.get(spec.name)) is not None)
        # Only the composite's own sources: one it reports of a source of its own is not told apart.
        mounted = workbench.mounts
    return {key: {"state": health.state, "detail": _recounted(health.detail, counts[key] if key in mounted else None)}
            for key, health in workbench.health_by_source().items()}


def _recounted(detail: str, count: int | None) -> str:
    """`detail` with the tool count it begins with replaced by `count`, or dropped (None)."""
    match = _TOOL_COUNT.match(detail)
    if match is None:
        return detail
    rest = detail[match.end():]
    if count is None:
        return rest
    return f"{count} tools, {rest}" if rest else f"{count} tools"


def health_routes(server: WorkbenchServer) -> tuple[Endpoint, Endpoint]:
    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        overall = server.workbench.health()
        ready = overall.state == "up" and not server.draining
        sources = sources_seen(server, None)
        body: dict[str, object] = {
            "status": "ready" if ready else ("draining" if server.draining else "not ready"),
            "sources": sources,
        }
        if server.settings.authenticates and scope_access(request.scope) is None:
            # The probe is open; what is wrong inside (paths, upstream errors) is for the token holder.
            body["sources"] = {k: {"state": h["state"]} for k, h in sources.items()}
        else:
            body.update(detail=overall.detail, sessions=len(server.sessions.sessions), inflight_calls=server.inflight)
        return JSONResponse(body, status_code=200 if ready else 503)

    return healthz, readyz
