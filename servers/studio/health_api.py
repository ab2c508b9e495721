"""`/ui/api/health` (the server and each source, live), `/ui/api/health/checks` (what
`workbench doctor` checks, run on demand) and `/ui/api/config` (the loaded config, secrets
masked, and the config file's errors now, with file, line and key).

The config and the checks are the operator's view. Even masked, the config names every
upstream server, command and URL, every person's token name and the whole policy; the checks
name every configured server (also those the policy hides from a caller) with its errors, and
running them again starts every configured MCP server — what one user of a shared server has
no business reading about the others, or starting at will. A server for one person (no token,
or only `WORKBENCH_TOKEN`) shows both to that person; a server for several (`[serve.tokens]`
or `[serve.oauth]`) only to callers granted `ADMIN_SCOPE`, as a named token's `scopes` or an
OAuth scope. The live health (`/ui/api/health`, counted by the caller's own listing) is
everyone's."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from servers.health import recounted, sources_seen, tool_counts
from servers.studio.config_view import mask_text
from servers.studio.web import api_error, session_of
from workbench.core import ToolSpec, logger

if TYPE_CHECKING:
    from servers.studio.app import StudioContext

CHECKS_TIMEOUT = 60.0
"""Seconds for the doctor's checks (they start each configured MCP server once)."""
CHECKS_FRESH = 15.0
"""Seconds a run of the checks answers again: reloading the page must not start every server anew."""
ADMIN_SCOPE = "workbench:admin"
"""The scope that shows a server for several people's config to its holder."""


def health_routes(context: StudioContext) -> list[BaseRoute]:
    server = context.server
    lock = anyio.Lock()
    last: dict[str, Any] = {}

    async def listed() -> list[ToolSpec] | None:
        """This caller's listing (Studio's guard bound the caller): a count said is of what they may see."""
        try:
            return await server.listed_tools()
        except Exception as e:  # the page still shows each source's state; the counts are left out
            logger.warning("studio: cannot list tools for the health page: %s", e)
            return None

    async def health(request: Request) -> Response:
        overall = server.workbench.health()
        ready = overall.state == "up" and not server.draining
        return JSONResponse({
            "status": "draining" if server.draining else ("ready" if ready else "not ready"),
            "detail": overall.detail,
            "sessions": len(server.sessions.sessions),
            "inflight_calls": server.inflight,
            "sources": sources_seen(server, await listed()),
        })

    def for_administrators(request: Request, what: str) -> Response | None:
        """The refusal for a caller who may not see `what` on a server for several people, or None."""
        settings = server.settings
        if (settings.tokens or settings.oauth) and ADMIN_SCOPE not in session_of(request).scopes:
            return api_error(403, "forbidden", f"{what} shown to this server's administrators: a token with the "
                                               f"scope {ADMIN_SCOPE!r} (in [serve.tokens] scopes, or from the "
                                               "authorization server)")
        return None

    async def checks(request: Request) -> Response:
        if (refused := for_administrators(request, "the doctor's checks are")) is not None:
            return refused
        if context.checks is None:
            return JSONResponse({"checks": [], "available": False})
        async with lock:  # one run at a time; a second request waits for it and shares its answer
            fresh = last and time.monotonic() - last["at"] < CHECKS_FRESH and "again" not in request.query_params
            if not fresh:
                with anyio.move_on_after(CHECKS_TIMEOUT):
                    try:
                        last.update(checks=await context.checks(), at=time.monotonic(), ran=time.time())
                    except Exception as e:  # a check that crashed: its words on the page, not a bare 500
                        logger.exception("studio: the doctor's checks failed")
                        return api_error(500, "checks_failed", f"the checks failed: {type(e).__name__}: {e}")
                    fresh = True
                if not fresh:
                    return api_error(504, "timeout", f"the checks did not finish within {CHECKS_TIMEOUT:g} s")
        # One run answers every caller: a server check's tool count ("5 tools, ready in …") becomes
        # the count of this caller's listing, as on the health page.
        counts = tool_counts(server, await listed())
        checks = [{**check, "detail": recounted(check["detail"], counts.get(check["name"].removeprefix("server ")))}
                  if check["name"].startswith("server ") else check for check in last["checks"]]
        # A detail quotes what it checked (a model's base_url, an upstream's error): masked as the config is.
        checks = [{**check, "detail": mask_text(str(check["detail"])), "hint": mask_text(str(check.get("hint") or ""))}
                  for check in checks]
        return JSONResponse({"checks": checks, "available": True, "ran_at": last["ran"]})

    async def config(request: Request) -> Response:
        if (refused := for_administrators(request, "the config is")) is not None:
            return refused
        if context.config_report is None:
            return JSONResponse({"available": False})
        report = await anyio.to_thread.run_sync(context.config_report)
        return JSONResponse({"available": True, **report})

    return [
        Route("/health", health, methods=["GET"]),
        Route("/health/checks", checks, methods=["GET"]),
        Route("/config", config, methods=["GET"]),
    ]
