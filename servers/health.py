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
from collections.abc import Awaitable, Callable, Sequence

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
"""The count a detail begins with (`adapters.mcp.McpWorkbench.health`, the doctor's server checks)."""


def tool_counts(server: WorkbenchServer, listed: Sequence[ToolSpec] | None) -> dict[str, int]:
    """How many of each source's tools `listed` (a caller's listing; None: not at hand) holds, for
    the sources the served composite mounts itself (one it reports of a source of its own is not
    told apart); a source missing here gets no count at all."""
    workbench = server.workbench
    if listed is None or not isinstance(workbench, CompositeWorkbench):
        return {}
    routes = workbench.catalog.routes  # exposed name → source; `expose` and the policy keep names
    counts = Counter(route.source for spec in listed if (route := routes.get(spec.name)) is not None)
    return {key: counts[key] for key in workbench.mounts}


def recounted(detail: str, count: int | None) -> str:
    """`detail` with the tool count it begins with replaced by `count`, or dropped (None)."""
    match = _TOOL_COUNT.match(detail)
    if match is None:
        return detail
    rest = detail[match.end():]
    if count is None:
        return rest
    head = f"{count} tool{'' if count == 1 else 's'}"
    return f"{head}, {rest}" if rest else head


def sources_seen(server: WorkbenchServer, listed: Sequence[ToolSpec] | None) -> SourceHealth:
    """Each source's state and detail for a caller whose tool listing is `listed` (None: not
    at hand): a count in the detail becomes the number of that source's tools in the listing,
    or is left out."""
    counts = tool_counts(server, listed)
    return {key: {"state": health.state, "detail": recounted(health.detail, counts.get(key))}
            for key, health in server.workbench.health_by_source().items()}


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
